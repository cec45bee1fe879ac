# Databricks notebook source
# MAGIC %md
# MAGIC ## Items per order status
# MAGIC A notebook exported from Databricks as source: the cluster defines `spark`.

# COMMAND ----------

from pyspark.sql import functions as F

# COMMAND ----------

orders = spark.read.csv("data/orders.csv", header=True, inferSchema=True)
orders.createOrReplaceTempView("orders")
display(orders)

# COMMAND ----------

# MAGIC %sql
# MAGIC SELECT status, count(*) AS n FROM orders GROUP BY status

# COMMAND ----------

per_status = orders.groupBy("status").agg(F.sum("quantity").alias("items"))
per_status.write.mode("overwrite").parquet("out/databricks_export/per_status")
