from pyspark.sql import SparkSession
from pyspark.sql import functions as F


class OrdersJob:
    def __init__(self, spark, source):
        self.spark = spark
        self.source = source

    def run(self):
        orders = self.spark.read.csv(self.source, header=True)
        orders.groupBy("status").count().write.mode("overwrite").parquet("out/class_job/by_status")


if __name__ == "__main__":
    spark = SparkSession.builder.getOrCreate()
    OrdersJob(spark, "data/orders.csv").run()
