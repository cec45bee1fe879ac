from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

spark = SparkSession.builder.getOrCreate()

statuses = spark.createDataFrame(
    [("completed", "done"), ("pending", "open"), ("cancelled", "void")],
    StructType([StructField("status", StringType()), StructField("label", StringType())]),
)

df = spark.read.csv("data/orders.csv", header=True, inferSchema=True)
df = df.withColumn("quantity", F.col("quantity").cast("long"))
df = df.join(F.broadcast(statuses), "status", "left")
df = df.withColumnRenamed("label", "status_label")

open_orders = df.filter(F.col("status_label") == "open")
closed = df.filter(F.col("status_label") != "open").union(open_orders.limit(0))

open_orders.write.mode("overwrite").json("out/reassign_chain/open")
closed.write.mode("overwrite").json("out/reassign_chain/closed")
