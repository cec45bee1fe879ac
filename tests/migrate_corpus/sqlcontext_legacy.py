from pyspark import SparkConf, SparkContext
from pyspark.sql import SQLContext

conf = SparkConf().setAppName("legacy").set("spark.sql.shuffle.partitions", "2")
sc = SparkContext(conf=conf)
sqlContext = SQLContext(sc)

orders = sqlContext.read.csv("data/orders.csv", header=True, inferSchema=True)
orders.registerTempTable("orders")
result = sqlContext.sql("SELECT customer_id, SUM(quantity) AS q FROM orders GROUP BY customer_id")
result.write.mode("overwrite").parquet("out/sqlcontext_legacy/q")
sc.stop()
