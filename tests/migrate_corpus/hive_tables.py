from pyspark.sql import SparkSession
from pyspark.sql import functions as F

spark = (
    SparkSession.builder.appName("hive-job")
    .config("spark.sql.warehouse.dir", "spark-warehouse")
    .enableHiveSupport()
    .getOrCreate()
)

spark.sql("CREATE DATABASE IF NOT EXISTS sales")
orders = spark.read.csv("data/orders.csv", header=True, inferSchema=True)
orders.write.mode("overwrite").format("parquet").saveAsTable("sales.orders")
totals = spark.table("sales.orders").groupBy("customer_id").agg(F.sum("quantity").alias("q"))
totals.write.mode("overwrite").saveAsTable("sales.customer_totals")
