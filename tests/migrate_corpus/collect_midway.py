from pyspark.sql import SparkSession
from pyspark.sql import functions as F

spark = SparkSession.builder.getOrCreate()
orders = spark.read.csv("data/orders.csv", header=True, inferSchema=True)

# Look up the "big" customers on the driver, then filter with a Python list.
rows = orders.groupBy("customer_id").agg(F.sum("quantity").alias("q")).collect()
big = [r["customer_id"] for r in rows if r["q"] > 5]
orders.filter(F.col("customer_id").isin(big)).write.mode("overwrite").parquet("out/collect_midway/big")
