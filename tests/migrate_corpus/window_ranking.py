from pyspark.sql import SparkSession, Window
from pyspark.sql import functions as F

spark = SparkSession.builder.getOrCreate()

orders = spark.read.csv("data/orders.csv", header=True, inferSchema=True)

w = Window.partitionBy("customer_id").orderBy(F.col("order_date"), F.col("order_id"))
ranked = orders.withColumn("order_rank", F.row_number().over(w)).withColumn(
    "running_qty", F.sum("quantity").over(w.rowsBetween(Window.unboundedPreceding, 0))
)
first_orders = ranked.filter(F.col("order_rank") == 1).drop("order_rank")

ranked.write.mode("overwrite").parquet("out/window_ranking/ranked")
first_orders.write.mode("overwrite").parquet("out/window_ranking/first_orders")
