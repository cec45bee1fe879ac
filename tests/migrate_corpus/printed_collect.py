from pyspark.sql import SparkSession
from pyspark.sql import functions as F

spark = SparkSession.builder.getOrCreate()
orders = spark.read.csv("data/orders.csv", header=True, inferSchema=True)
print(orders.agg(F.sum("quantity")).collect()[0][0])
orders.groupBy("status").count().show()
