"""Revenue per country: a main(argv) entry point that returns an exit status."""
import argparse
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", default="data/orders.csv")
    parser.add_argument("--customers", default="data/customers.csv")
    parser.add_argument("--min-quantity", type=int, default=2)
    parser.add_argument("--output", default="out/main_argv_exit/by_country")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    spark = SparkSession.builder.appName("by-country").getOrCreate()
    orders = spark.read.csv(args.orders, header=True, inferSchema=True)
    customers = spark.read.csv(args.customers, header=True)
    # Small orders are samples, not sales.
    sales = orders.where(F.col("quantity") >= args.min_quantity)
    by_country = (
        sales.join(customers, "customer_id")
        .groupBy("country")
        .agg(F.sum("quantity").alias("quantity"), F.count("*").alias("orders"))
    )
    by_country.write.mode("overwrite").json(args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
