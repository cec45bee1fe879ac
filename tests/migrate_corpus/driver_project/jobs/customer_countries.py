from pyspark.sql import functions as F


def run_job(spark, config):
    customers = spark.read.csv("data/customers.csv", header=True)
    by_country = customers.groupBy(F.upper("country").alias("country")).count()
    by_country.write.mode("overwrite").json(f"{config['output_root']}/countries")
