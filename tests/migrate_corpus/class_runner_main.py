import logging

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

logging.basicConfig(level=logging.INFO)
LOGGER = logging.getLogger(__name__)


class RevenueJob:
    def __init__(self, spark, orders_path, products_path, output):
        self.spark = spark
        self.orders_path = orders_path
        self.products_path = products_path
        self.output = output

    def run(self):
        orders = self.spark.read.csv(self.orders_path, header=True, inferSchema=True)
        products = self.spark.read.csv(self.products_path, header=True, inferSchema=True)
        revenue = orders.join(products, "product_id").groupBy("category").agg(
            F.round(F.sum(F.col("quantity") * F.col("price")), 2).alias("revenue")
        )
        LOGGER.info("revenue rows: %s", revenue.count())
        revenue.write.mode("overwrite").parquet(self.output)


def main():
    spark = SparkSession.builder.master("local[2]").appName("revenue").getOrCreate()
    RevenueJob(spark, "data/orders.csv", "data/products.csv", "out/class_runner_main/rev").run()
    spark.stop()


if __name__ == "__main__":
    main()
