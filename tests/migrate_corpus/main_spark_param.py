from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F


def main(spark: SparkSession, input_path: str, output_path: str) -> None:
    orders: DataFrame = spark.read.csv(input_path, header=True, inferSchema=True)
    ranked = orders.groupBy("product_id").agg(F.sum("quantity").alias("quantity"))
    ranked.write.mode("overwrite").parquet(output_path)


if __name__ == "__main__":
    spark = SparkSession.builder.appName("main-with-spark").getOrCreate()
    main(spark, "data/orders.csv", "out/main_spark_param/by_product")
    spark.stop()
