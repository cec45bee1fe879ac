import argparse

import yaml
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

parser = argparse.ArgumentParser()
parser.add_argument("--config", default="config/customers.yaml", help="job settings (YAML)")
parser.add_argument("--with-counts", action="store_true")
args = parser.parse_args()

with open(args.config) as fh:
    settings = yaml.safe_load(fh)

spark = SparkSession.builder.appName("active-customers").getOrCreate()
customers = spark.read.option("header", True).csv(settings["customers"])
orders = spark.read.option("header", True).csv(settings["orders"])

active = customers.where(F.col("country").isin(settings["countries"])).join(
    orders.select("customer_id").distinct(), "customer_id", "left_semi"
)
if args.with_counts:
    active = active.join(orders.groupBy("customer_id").count(), "customer_id")
active.write.mode("overwrite").parquet(settings["output"])
