"""A child process for tests/test_storage_fs.py: materializes asset `numbers` slowly, so the
test can `kill -9` it while the version folder is half written.

    python -m tests.storage_writer STORAGE_ROOT
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import dagster as dg
from pysetl.workflow import Pipeline, Stage
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import LongType

from pysetl_dagster import PySparkSessionResource, SparkParquetIOManager, pysetl_pipeline
from tests import numbers_pipeline


@F.udf(LongType())
def _slowly(value: int) -> int:
    time.sleep(0.5)
    return value


class Numbers(numbers_pipeline.Numbers):
    """The same asset key (`numbers`) as the tests' Numbers, written a row every 0.5 s."""

    def get(self) -> Any:
        out = super().get().repartition(8)
        return out.select(_slowly(F.col("value")).alias("value"))


def main(root: str) -> None:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false")
    spark.getOrCreate().sparkContext.setLogLevel("ERROR")
    assets = pysetl_pipeline(
        Pipeline().add_stage(Stage().add_factory(Numbers())), name="slow"
    ).assets
    resources = {
        "pyspark": PySparkSessionResource(master="local[1]", stop_at_exit=False),
        "io_manager": SparkParquetIOManager(base_path=root),
    }
    dg.materialize(assets, resources=resources, run_config=numbers_pipeline.numbers_config(64))


if __name__ == "__main__":
    main(sys.argv[1])
