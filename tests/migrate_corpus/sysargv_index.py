import sys

from pyspark.sql import SparkSession

if __name__ == "__main__":
    input_path = sys.argv[1] if len(sys.argv) > 1 else "data/customers.csv"
    output_path = sys.argv[2] if len(sys.argv) > 2 else "out/sysargv_index/customers"
    spark = SparkSession.builder.appName(sys.argv[0]).getOrCreate()
    df = spark.read.csv(input_path, header=True)
    df.select("customer_id", "country").write.mode("overwrite").parquet(output_path)
    spark.stop()
