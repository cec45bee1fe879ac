"""Clean the customer master: helper functions that take and return DataFrames."""
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

COUNTRY_FIXES = {"uk": "United Kingdom", "usa": "United States"}


def normalise_country(df: DataFrame) -> DataFrame:
    mapping = F.create_map(*[F.lit(x) for kv in COUNTRY_FIXES.items() for x in kv])
    lowered = F.lower(F.trim("country"))
    return df.withColumn(
        "country", F.coalesce(mapping[lowered], F.initcap(F.col("country")))
    )


def add_initials(df):
    parts = F.split(F.col("name"), " ")
    return df.withColumn(
        "initials", F.concat(F.substring(parts[0], 1, 1), F.substring(parts[1], 1, 1))
    )


def main():
    spark = SparkSession.builder.getOrCreate()
    raw = spark.read.csv("data/customers.csv", header=True, inferSchema=True)
    clean = add_initials(normalise_country(raw)).dropDuplicates(["customer_id"])
    clean = clean.na.fill({"country": "unknown"})
    clean.printSchema()
    clean.write.mode("overwrite").option("header", "true").csv("out/clean_customers/customers")


if __name__ == "__main__":
    main()
