import json

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

with open("config/job.json") as f:
    CONFIG = json.load(f)


def read_orders(spark):
    return spark.read.csv(CONFIG["inputs"]["orders"], header=True, inferSchema=True)


def big_orders(df):
    return df.where(F.col("quantity") >= CONFIG["min_quantity"])


def main():
    spark = SparkSession.builder.getOrCreate()
    big_orders(read_orders(spark)).write.mode("overwrite").parquet(
        "out/config_global_functions/big"
    )


if __name__ == "__main__":
    main()
