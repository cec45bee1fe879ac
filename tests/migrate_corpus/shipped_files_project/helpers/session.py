"""A session helper in the style of many ETL templates: the files it ships with the job
(`spark.files`) are found again through SparkFiles, where a cluster would put them; the log
is a small wrapper with the JVM logger's method names (`warn`, not `warning`)."""
import json
import os

from pyspark import SparkFiles
from pyspark.sql import SparkSession


class JobLog:
    def __init__(self, app_name):
        self.prefix = f"[{app_name}]"

    def warn(self, message):
        print(self.prefix, "WARN", message)


def start_session(app_name, files=()):
    builder = SparkSession.builder.appName(app_name)
    if files:
        builder = builder.config("spark.files", ",".join(files))
    spark = builder.getOrCreate()
    settings = {}
    folder = SparkFiles.getRootDirectory()
    for name in sorted(os.listdir(folder)):
        if name.endswith("settings.json"):
            with open(os.path.join(folder, name)) as handle:
                settings.update(json.load(handle))
    return spark, JobLog(app_name), settings
