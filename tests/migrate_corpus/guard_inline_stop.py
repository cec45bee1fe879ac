from pyspark.sql import SparkSession
from pyspark.sql.types import IntegerType, StringType, StructField, StructType

SCHEMA = StructType(
    [
        StructField("customer_id", IntegerType()),
        StructField("name", StringType()),
        StructField("country", StringType()),
    ]
)

if __name__ == "__main__":
    spark = SparkSession.builder.appName("inline").getOrCreate()
    customers = spark.read.csv("data/customers.csv", header=True, schema=SCHEMA)
    customers.where("country = 'uk'").write.mode("overwrite").parquet("out/guard_inline_stop/uk")
    spark.stop()
