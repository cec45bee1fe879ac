from pyspark.sql import SparkSession

spark = SparkSession.builder.getOrCreate()
orders = spark.read.csv("data/orders.csv", header=True
orders.write.parquet("out/broken_syntax/orders")
