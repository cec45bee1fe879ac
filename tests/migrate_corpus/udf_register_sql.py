from pyspark.sql import SparkSession
from pyspark.sql.types import StringType


def size_label(quantity):
    return "bulk" if quantity and quantity > 2 else "small"


spark = SparkSession.builder.getOrCreate()
spark.udf.register("size_label", size_label, StringType())
spark.read.csv("data/orders.csv", header=True, inferSchema=True).createOrReplaceTempView("o")
labelled = spark.sql("SELECT order_id, size_label(quantity) AS size FROM o")
labelled.write.mode("overwrite").parquet("out/udf_register_sql/labelled")
