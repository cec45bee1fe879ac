from pyspark.sql import SparkSession

spark = SparkSession.builder.appName("wordcount").getOrCreate()
sc = spark.sparkContext

lines = sc.textFile("data/products.csv")
words = lines.flatMap(lambda line: line.lower().replace(",", " ").split())
counts = words.map(lambda w: (w, 1)).reduceByKey(lambda a, b: a + b)
spark.createDataFrame(counts, ["word", "n"]).write.mode("overwrite").parquet(
    "out/rdd_wordcount/counts"
)
