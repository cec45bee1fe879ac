import glob
import os
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

INPUT_DIR = "data/events"

spark = SparkSession.builder.getOrCreate()

frames = []
for path in sorted(glob.glob(os.path.join(INPUT_DIR, "*.json"))):
    day = os.path.basename(path).replace(".json", "")
    frames.append(spark.read.json(path).withColumn("day", F.lit(day)))

events = reduce(DataFrame.unionByName, frames)
per_user = events.groupBy("user", "action").count()
per_user.write.mode("overwrite").parquet("out/loop_union_files/per_user")
