import argparse

from pyspark.sql import SparkSession
from pyspark.sql import functions as F


def parse_args():
    parser = argparse.ArgumentParser(description="Top products by quantity")
    parser.add_argument("--orders", default="data/orders.csv")
    parser.add_argument("--products", default="data/products.csv")
    parser.add_argument("--output", default="out/argparse_paths/top_products")
    parser.add_argument("--limit", type=int, default=2)
    return parser.parse_args()


def main():
    args = parse_args()
    spark = SparkSession.builder.master("local[2]").getOrCreate()
    orders = spark.read.csv(args.orders, header=True, inferSchema=True)
    products = spark.read.csv(args.products, header=True, inferSchema=True)
    totals = orders.groupBy("product_id").agg(F.sum("quantity").alias("quantity"))
    top = (
        totals.join(products, "product_id")
        .orderBy(F.col("quantity").desc(), F.col("product_id"))
        .limit(args.limit)
        .select("product_id", "title", "quantity")
    )
    top.write.mode("overwrite").option("header", True).csv(args.output)


if __name__ == "__main__":
    main()
