"""Job runner: python main.py --job orders_summary [--date 2024-01-04]."""
import argparse
import importlib
import time

from pyspark.sql import SparkSession


def parse_args():
    parser = argparse.ArgumentParser(description="Run one PySpark job")
    parser.add_argument("--job", default="orders_summary", help="module name under jobs/")
    parser.add_argument("--date", default="2024-01-04")
    return parser.parse_args()


if __name__ == "__main__":
    args = parse_args()
    spark = SparkSession.builder.appName(f"job-{args.job}").getOrCreate()
    job_module = importlib.import_module(f"jobs.{args.job}")
    started = time.time()
    job_module.run_job(spark, {"date": args.date, "output_root": "out/driver_project"})
    print(f"job {args.job} took {time.time() - started:.1f}s")
    spark.stop()
