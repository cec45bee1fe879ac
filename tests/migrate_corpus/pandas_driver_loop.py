from pyspark.sql import SparkSession

spark = SparkSession.builder.getOrCreate()
products = spark.read.csv("data/products.csv", header=True, inferSchema=True)

pdf = products.toPandas()
for _, row in pdf.iterrows():
    if row["price"] > 100:
        print("expensive:", row["title"])
products.write.mode("overwrite").parquet("out/pandas_driver_loop/products")
