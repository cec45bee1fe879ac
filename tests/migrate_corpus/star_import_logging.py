import logging

from pyspark.sql import SparkSession
from pyspark.sql.functions import *

logger = logging.getLogger(__name__)

spark = SparkSession.builder.getOrCreate()
spark.conf.set("spark.sql.shuffle.partitions", "3")
spark.sparkContext.setLogLevel("WARN")

orders = spark.read.csv("data/orders.csv", header=True, inferSchema=True)
logger.info("read %d orders", orders.count())
done = orders.where(col("status") == "completed").withColumn("big", when(col("quantity") > 2, lit(True)).otherwise(lit(False)))
done.coalesce(1).write.mode("overwrite").csv("out/star_import_logging/done", header=True)
