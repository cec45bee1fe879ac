"""ETL job in the 'start_spark' style: a helper returns the session, a logger and the config."""
import json
import logging
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F


def start_spark(app_name="my_etl_job", files=None, spark_config=None):
    builder = SparkSession.builder.appName(app_name)
    for key, value in (spark_config or {}).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    log = logging.getLogger(app_name)
    config = {}
    for path in files or []:
        with open(path) as handle:
            config.update(json.load(handle))
    return spark, log, config


def extract_data(spark, path):
    return spark.read.csv(path, header=True, inferSchema=True)


def transform_data(df, min_quantity):
    return df.where(F.col("quantity") >= min_quantity).withColumn(
        "big", F.col("quantity") > 2
    )


def load_data(df, path):
    df.coalesce(1).write.mode("overwrite").csv(path, header=True)


def main():
    spark, log, config = start_spark(
        app_name="start_spark_helper",
        files=["config/job.json"],
        spark_config={"spark.sql.shuffle.partitions": "2"},
    )
    log.warning("etl job is up-and-running")
    data = extract_data(spark, config["inputs"]["orders"])
    data_transformed = transform_data(data, config["min_quantity"])
    load_data(data_transformed, "out/start_spark_helper/orders")
    log.warning("etl job is finished")
    spark.stop()
    return None


if __name__ == "__main__":
    sys.exit(main())
