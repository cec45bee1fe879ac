from pyspark.sql import SparkSession

spark = None
processed = 0


def init():
    global spark
    spark = SparkSession.builder.appName("globals").getOrCreate()


def process(path, out):
    global processed
    df = spark.read.csv(path, header=True)
    df.write.mode("overwrite").parquet(out)
    processed += 1


init()
process("data/customers.csv", "out/global_counter/customers")
process("data/products.csv", "out/global_counter/products")
print("processed", processed)
