from pyspark.sql import SparkSession

spark = SparkSession.builder.appName("sql-report").getOrCreate()

spark.read.csv("data/orders.csv", header=True, inferSchema=True).createOrReplaceTempView("orders")
customers = spark.read.csv("data/customers.csv", header=True, inferSchema=True)
customers.createOrReplaceTempView("customers")

report = spark.sql(
    """
    SELECT c.name, COUNT(*) AS orders, SUM(o.quantity) AS items
    FROM orders o
    JOIN customers c ON o.customer_id = c.customer_id
    WHERE o.status = 'completed'
    GROUP BY c.name
    """
)
report.write.mode("overwrite").parquet("out/sql_temp_views/report")
