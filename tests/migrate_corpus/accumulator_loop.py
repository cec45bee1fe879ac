"""Union the daily event files one by one into an accumulator."""
import os

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

spark = SparkSession.builder.getOrCreate()

df_all = None
for name in sorted(os.listdir("data/events")):
    day = spark.read.json(os.path.join("data/events", name)).withColumn("file", F.lit(name))
    if df_all is None:
        df_all = day
    else:
        df_all = df_all.union(day)

counts = df_all.groupBy("file").count()
counts.write.mode("overwrite").parquet("out/accumulator_loop/counts")
