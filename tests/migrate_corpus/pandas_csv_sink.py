import os

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

spark = SparkSession.builder.getOrCreate()
orders = spark.read.csv("data/orders.csv", header=True, inferSchema=True)
per_status = orders.groupBy("status").agg(F.sum("quantity").alias("items")).orderBy("status")
os.makedirs("out/pandas_csv_sink", exist_ok=True)
per_status.toPandas().to_csv("out/pandas_csv_sink/per_status.csv", index=False)
