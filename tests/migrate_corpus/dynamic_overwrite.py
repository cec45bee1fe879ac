from pyspark.sql import SparkSession
from pyspark.sql import functions as F

spark = (
    SparkSession.builder.appName("daily-partitions")
    .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
    .getOrCreate()
)

orders = spark.read.csv("data/orders.csv", header=True, inferSchema=True)
daily = orders.groupBy("order_date", "status").agg(F.sum("quantity").alias("items"))
daily.write.mode("overwrite").partitionBy("order_date").parquet("out/dynamic_overwrite/daily")
