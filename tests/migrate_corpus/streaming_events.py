from pyspark.sql import SparkSession
from pyspark.sql import functions as F

spark = SparkSession.builder.appName("events-stream").getOrCreate()

events = spark.readStream.format("json").schema("user STRING, action STRING").load("data/events")
counts = events.groupBy("action").agg(F.count("*").alias("events"))
query = counts.writeStream.outputMode("complete").format("memory").queryName("counts").start()
query.awaitTermination(10)
