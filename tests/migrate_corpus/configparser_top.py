import configparser

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

config = configparser.ConfigParser()
config.read("config/job.cfg")

INPUT = config["paths"]["orders"]
OUTPUT = config["paths"]["output"]

spark = SparkSession.builder.appName("cfg-job").getOrCreate()

orders = spark.read.csv(INPUT, header=True, inferSchema=True)
threshold = int(config["rules"]["min_quantity"])
large = orders.filter(F.col("quantity") >= threshold)
large.write.mode("overwrite").parquet(OUTPUT)
