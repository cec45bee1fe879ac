"""Landing job: every row it writes carries the time it was loaded (`current_timestamp()`),
so two runs never write the same values in that column."""
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

spark = SparkSession.builder.appName("landing").getOrCreate()
customers = spark.read.csv("data/customers.csv", header=True, inferSchema=True)
landed = customers.withColumn("loaded_at", F.current_timestamp()).withColumn(
    "load_date", F.current_date()
)
landed.write.mode("overwrite").parquet("out/ingest_timestamp/customers")
landed.write.mode("overwrite").option("header", True).csv("out/ingest_timestamp/customers_csv")
