import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

customers_path = sys.argv[1] if len(sys.argv) > 1 else "data/customers.csv"
output_path = sys.argv[2] if len(sys.argv) > 2 else "out/sysargv_script/countries"

spark = SparkSession.builder.getOrCreate()
customers = spark.read.csv(customers_path, header=True)
countries = customers.select(F.upper("country").alias("country")).distinct()
countries.write.mode("overwrite").text(output_path)
