"""Finds its inputs next to itself, wherever it is started from."""
import os

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")

spark = SparkSession.builder.getOrCreate()
products = spark.read.csv(os.path.join(DATA, "products.csv"), header=True, inferSchema=True)
priced = products.withColumn("price_band", F.when(F.col("price") >= 10, "high").otherwise("low"))
priced.write.mode("overwrite").orc("out/script_dir_paths/priced")
