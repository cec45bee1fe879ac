import json

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

with open("config/job.json") as handle:
    config = json.load(handle)
THRESHOLD = config["min_quantity"] * 2

spark = SparkSession.builder.getOrCreate()
orders = spark.read.csv(config["inputs"]["orders"], header=True, inferSchema=True)
large = orders.where(F.col("quantity") >= THRESHOLD).select("order_id", "quantity")
large.write.mode("overwrite").csv("out/fixed_config_file/large")
