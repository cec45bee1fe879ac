"""Course-assignment shape: `main(inputs, output)` reads the `spark` the `__main__` block
builds, and wraps a plain module-level function as a UDF inside `main` (so Spark's workers
need the function itself, not a decorated object)."""
import sys

from pyspark.sql import SparkSession, functions, types


def quantity_band(quantity):
    # Bands agreed with the warehouse team: 1 is a single item, up to 3 a few, else many.
    if quantity is None:
        return "unknown"
    if quantity <= 1:
        return "single"
    return "few" if quantity <= 3 else "many"


def main(inputs, output):
    orders = spark.read.csv(inputs, header=True, inferSchema=True)
    band = functions.udf(quantity_band, returnType=types.StringType())
    banded = orders.withColumn("band", band(orders["quantity"]))
    banded.groupBy("band").count().write.csv(output, mode="overwrite", header=True)


if __name__ == "__main__":
    inputs = sys.argv[1] if len(sys.argv) > 1 else "data/orders.csv"
    output = sys.argv[2] if len(sys.argv) > 2 else "out/udf_plain_function/bands"
    spark = SparkSession.builder.appName("quantity bands").getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    main(inputs, output)
