# Daily revenue report: a linear read -> transform -> write script.
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

spark = SparkSession.builder.appName("daily-orders").getOrCreate()

orders = spark.read.csv("data/orders.csv", header=True, inferSchema=True)
# Only completed orders count towards revenue.
completed = orders.filter(F.col("status") == "completed")
daily = completed.groupBy("order_date").agg(
    F.sum("quantity").alias("items"),
    F.countDistinct("customer_id").alias("customers"),
)
daily.show()
daily.write.mode("overwrite").parquet("out/linear_orders/daily")

spark.stop()
