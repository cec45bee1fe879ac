from pyspark.sql import SparkSession
from pyspark.sql import functions as F

spark = SparkSession.builder.getOrCreate()

orders = spark.read.csv("data/orders.csv", header=True, inferSchema=True)
customers = spark.read.csv("data/customers.csv", header=True, inferSchema=True)
products = spark.read.csv("data/products.csv", header=True, inferSchema=True)

customers = customers.withColumn("country", F.upper(F.col("country")))

enriched = (
    orders.join(customers, "customer_id", "left")
    .join(products, "product_id", "left")
    .withColumn("amount", F.col("quantity") * F.col("price"))
)
by_country = enriched.groupBy("country").agg(F.round(F.sum("amount"), 2).alias("amount"))

enriched.write.mode("overwrite").json("out/joins_three_sources/enriched")
by_country.write.mode("overwrite").parquet("out/joins_three_sources/by_country")
