"""Customer activity job in extract / transform / load style."""
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

INPUT_PATH = "data/orders.csv"
OUTPUT_PATH = "out/etl_functions/customer_activity"


def extract(spark: SparkSession, path: str) -> DataFrame:
    return spark.read.option("header", "true").option("inferSchema", "true").csv(path)


def transform(orders: DataFrame) -> DataFrame:
    """Orders per customer, with the first and last order date."""
    return (
        orders.where(F.col("status") != "cancelled")
        .groupBy("customer_id")
        .agg(
            F.count("*").alias("orders"),
            F.min("order_date").alias("first_order"),
            F.max("order_date").alias("last_order"),
        )
    )


def load(df: DataFrame, path: str) -> None:
    df.write.mode("overwrite").json(path)


def main() -> None:
    spark = SparkSession.builder.appName("customer-activity").getOrCreate()
    orders = extract(spark, INPUT_PATH)
    activity = transform(orders)
    load(activity, OUTPUT_PATH)
    spark.stop()


if __name__ == "__main__":
    main()
