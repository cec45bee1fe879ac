"""Entry point of a small project: the helper package builds the session and ships the
settings file with `spark.files`; the job reads them back from SparkFiles."""
from pyspark.sql import functions as F

from helpers.session import start_session


def main():
    spark, log, settings = start_session(
        "big orders", files=["job_settings.json"]
    )
    log.warn("job started")
    orders = spark.read.csv("data/orders.csv", header=True, inferSchema=True)
    big = orders.where(F.col("quantity") >= settings["min_quantity"])
    big.write.mode("overwrite").parquet(settings["output"])
    log.warn("job finished")
    spark.stop()


if __name__ == "__main__":
    main()
