from pyspark.sql import SparkSession

spark = SparkSession.builder.appName("insert").getOrCreate()
orders = spark.read.csv("data/orders.csv", header=True, inferSchema=True)
spark.sql(
    "CREATE TABLE IF NOT EXISTS completed (order_id INT, quantity INT) USING parquet"
)
orders.where("status = 'completed'").select("order_id", "quantity").write.insertInto(
    "completed", overwrite=True
)
