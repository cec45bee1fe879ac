"""Dimension build: each country gets a surrogate key from monotonically_increasing_id(), whose
values follow how the rows are partitioned when the key is computed."""
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

spark = SparkSession.builder.appName("dim-country").getOrCreate()
customers = spark.read.csv("data/customers.csv", header=True, inferSchema=True)
countries = customers.select("country").distinct().orderBy("country")
dim_country = countries.withColumn("country_key", F.monotonically_increasing_id())
dim_country.write.mode("overwrite").parquet("out/surrogate_keys/dim_country")
