"""A code location for the daemon test: the `inbox` pipeline with its file sensor switched on.

`$PYSETL_TEST_INBOX` is the watched folder; storage goes to `$PYSETL_DAGSTER_STORAGE`. The
sensor ticks every second and a file counts once it has been unchanged for one second.
"""

from __future__ import annotations

import os

from dagster import DefaultSensorStatus

from pysetl_dagster import PySparkSessionResource, build_definitions, pysetl_pipeline
from tests.inbox_pipeline import build_inbox_pipeline

INBOX = os.environ["PYSETL_TEST_INBOX"]

inbox = pysetl_pipeline(build_inbox_pipeline(INBOX), name="inbox")
inbox.on_new_files(
    INBOX,
    pattern="*.csv",
    settle_seconds=1,
    minimum_interval_seconds=1,
    default_status=DefaultSensorStatus.RUNNING,
)

defs = build_definitions(
    inbox,
    resources={
        "pyspark": PySparkSessionResource(
            master="local[1]",
            spark_config={"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "1"},
        )
    },
)
