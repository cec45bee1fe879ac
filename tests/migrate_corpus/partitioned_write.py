from pyspark.sql import SparkSession
from pyspark.sql import functions as F

spark = SparkSession.builder.getOrCreate()

orders = (
    spark.read.format("csv")
    .option("header", "true")
    .option("inferSchema", "true")
    .load("data/orders.csv")
)
orders = orders.withColumn("month", F.substring("order_date", 1, 7))
orders.write.partitionBy("status", "month").mode("overwrite").format("parquet").save(
    "out/partitioned_write/orders"
)
