import os
from pyspark.sql import SparkSession

OUT = os.environ.get("OUT_DIR", "out/late_defaults")


def save(df, path=OUT):
    df.write.mode("overwrite").parquet(path)


class Job:
    target = OUT + "/job"

    def run(self, spark):
        save(spark.range(3), self.target)


if __name__ == "__main__":
    spark = SparkSession.builder.getOrCreate()
    Job().run(spark)
    print(spark.range(2).collect())
