from pyspark.sql import functions as F


def extract(spark):
    return spark.read.csv("data/orders.csv", header=True, inferSchema=True)


def transform(orders, date):
    return (
        orders.where(F.col("order_date") <= F.lit(date))
        .groupBy("status")
        .agg(F.count("*").alias("orders"), F.sum("quantity").alias("items"))
    )


def run_job(spark, config):
    summary = transform(extract(spark), config["date"])
    summary.write.mode("overwrite").parquet(f"{config['output_root']}/orders_summary")
