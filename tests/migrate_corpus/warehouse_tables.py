"""Nightly job that keeps its results as warehouse tables."""
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

spark = SparkSession.builder.appName("tables").getOrCreate()

orders = spark.read.csv("data/orders.csv", header=True, inferSchema=True)
orders.filter(F.col("status") == "completed").write.mode("overwrite").saveAsTable(
    "completed_orders"
)

spark.sql(
    "CREATE TABLE IF NOT EXISTS customer_totals (customer_id INT, items BIGINT) USING parquet"
)
totals = spark.table("completed_orders").groupBy("customer_id").agg(
    F.sum("quantity").alias("items")
)
totals.write.insertInto("customer_totals", overwrite=True)
