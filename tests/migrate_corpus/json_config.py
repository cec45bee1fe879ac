import json
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

config_path = sys.argv[1] if len(sys.argv) > 1 else "config/job.json"
with open(config_path) as handle:
    config = json.load(handle)

spark = SparkSession.builder.config("spark.sql.shuffle.partitions", "4").getOrCreate()

orders = spark.read.csv(config["inputs"]["orders"], header=True, inferSchema=True)
products = spark.read.csv(config["inputs"]["products"], header=True, inferSchema=True)

big = orders.filter(F.col("quantity") >= config["min_quantity"])
revenue = (
    big.join(products, on="product_id", how="inner")
    .withColumn("revenue", F.round(F.col("quantity") * F.col("price"), 2))
    .groupBy("category")
    .agg(F.sum("revenue").alias("revenue"))
)
revenue.write.mode("overwrite").parquet(config["output"])
