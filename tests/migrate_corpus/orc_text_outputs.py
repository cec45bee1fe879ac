from pyspark.sql import SparkSession
from pyspark.sql import functions as F

spark = SparkSession.builder.getOrCreate()
products = spark.read.option("header", "true").csv("data/products.csv")
products.write.mode("overwrite").orc("out/orc_text_outputs/products_orc")
titles = products.select(F.concat_ws(":", "product_id", "title").alias("value"))
titles.write.mode("overwrite").text("out/orc_text_outputs/titles")
products.write.mode("overwrite").json("out/orc_text_outputs/products_json")
