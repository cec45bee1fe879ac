"""A run whose Spark job takes long (generated rows, a slow Python UDF), launched and terminated
the way the UI does it: GraphQL `launchRun` / `terminateRun` on a `DagsterInstance` in a temp
dir, the default run launcher starting the run as a subprocess of a code server.

Used by tests/test_cancel.py and benchmarks/cancel.py. The run process serves the Spark UI and
REST API on `PYSETL_SLOW_UI_PORT` (loopback), which is where Spark is asked about its jobs.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Self

import dagster as dg
from pysetl.workflow import Factory, Pipeline, Stage
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import LongType
from typedspark import Column, DataSet, Schema

from pysetl_dagster import PySparkSessionResource, build_definitions, pysetl_pipeline

SLEEP_PER_ROW = 0.01


class SlowRow(Schema):
    x: Column[LongType]


class Slow(Factory[DataSet[SlowRow]]):
    """Rows that each take SLEEP_PER_ROW seconds in a Python UDF: about
    `PYSETL_SLOW_SECONDS` seconds of Spark work on 2 cores, run when the output is stored."""

    def read(self) -> Self:
        return self

    def process(self) -> Self:
        seconds = float(os.environ.get("PYSETL_SLOW_SECONDS", "120"))
        rows = int(2 * seconds / SLEEP_PER_ROW)

        @F.udf("long")
        def slow(value: int) -> int:
            import time

            time.sleep(SLEEP_PER_ROW)
            return value

        spark = SparkSession.builder.getOrCreate()
        rows_df = spark.range(0, rows, numPartitions=2)
        self.out = DataSet[SlowRow](rows_df.select(slow("id").alias("x")))
        return self

    def write(self) -> Self:
        return self

    def get(self) -> DataSet[SlowRow]:
        return self.out


def _defs() -> dg.Definitions:
    port = os.environ.get("PYSETL_SLOW_UI_PORT", "4040")
    spark_config = {
        "spark.master": "local[2]",
        "spark.ui.enabled": "true",
        "spark.ui.port": port,
        "spark.port.maxRetries": "0",  # fail loudly rather than serve elsewhere
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.ui.showConsoleProgress": "false",
    }
    watch = os.environ.get("PYSETL_SLOW_WATCH", "1") == "1"  # benchmark: with/without watcher
    return build_definitions(
        pysetl_pipeline(Pipeline().add_stage(Stage().add_factory(Slow())), name="slow"),
        resources={
            "pyspark": PySparkSessionResource(spark_config=spark_config, cancel_on_terminate=watch)
        },
    )


defs = _defs()

LAUNCH = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message stack }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""

TERMINATE = """
mutation($runId: String!) {
  terminateRun(runId: $runId) {
    __typename
    ... on TerminateRunSuccess { run { runId } }
    ... on TerminateRunFailure { message }
    ... on PythonError { message stack }
  }
}"""


def running_spark_jobs(port: int, run_id: str) -> list[int] | None:
    """Running Spark jobs tagged with the run, from the run process's Spark REST API; None
    when no Spark application answers on the port (not started yet, or gone)."""
    base = f"http://127.0.0.1:{port}/api/v1/applications"
    try:
        with urllib.request.urlopen(base, timeout=2) as resp:
            apps = json.load(resp)
        if not apps:
            return None
        with urllib.request.urlopen(f"{base}/{apps[0]['id']}/jobs?status=running", timeout=2) as r:
            jobs = json.load(r)
    except (OSError, ValueError):  # not listening (yet), or not answering JSON yet
        return None
    tag = f"dagster-run-{run_id}"
    return [j["jobId"] for j in jobs if tag in j.get("jobTags", [])]


def launch_and_terminate(
    home: Path,
    ui_port: int,
    *,
    seconds: float,
    terminate_after: float,
    timeout: float = 180,
    watch: bool = True,
) -> dict[str, Any]:
    """Launch the slow run, terminate it `terminate_after` s after its Spark job started, and
    measure: seconds from the terminate call until Spark has no running job of the run, the
    run's final status, and the run's Spark jobs still running at the end."""
    env = {
        "PYSETL_SLOW_UI_PORT": str(ui_port),
        "PYSETL_SLOW_SECONDS": str(seconds),
        "PYSETL_SLOW_WATCH": "1" if watch else "0",
        "PYSETL_DAGSTER_STORAGE": str(home / "storage"),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # inherited by the code server and the run process it starts
    try:
        return _launch_and_terminate(home, ui_port, terminate_after, timeout)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _launch_and_terminate(
    home: Path, ui_port: int, terminate_after: float, timeout: float
) -> dict[str, Any]:
    from dagster_graphql.test.utils import (
        define_out_of_process_context,
        execute_dagster_graphql,
        infer_job_selector,
    )

    home.mkdir(parents=True, exist_ok=True)
    overrides = {
        "telemetry": {"enabled": False},
        # Launch on submit, as `dagster dev` does once its daemon dequeues the run.
        "run_coordinator": {
            "module": "dagster._core.run_coordinator",
            "class": "DefaultRunCoordinator",
        },
    }
    with (
        dg.DagsterInstance.local_temp(str(home), overrides=overrides) as instance,
        define_out_of_process_context(__file__, "defs", instance) as context,
    ):
        params = {
            "selector": infer_job_selector(context, "slow_assets"),
            "runConfigData": {},
            "mode": "default",
        }
        launched = execute_dagster_graphql(context, LAUNCH, {"params": params}).data["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]
        deadline = time.monotonic() + timeout
        while not running_spark_jobs(ui_port, run_id):
            run = instance.get_run_by_id(run_id)
            assert run is not None and not run.is_finished, f"run ended early: {run}"
            assert time.monotonic() < deadline, "the run's Spark job did not start"
            time.sleep(0.5)
        time.sleep(terminate_after)
        assert running_spark_jobs(ui_port, run_id), "the Spark job ended before terminate"
        start = time.monotonic()
        terminated = execute_dagster_graphql(context, TERMINATE, {"runId": run_id})
        result = terminated.data["terminateRun"]
        assert result["__typename"] == "TerminateRunSuccess", result
        cancel_s = None
        while time.monotonic() - start < 60:
            if not running_spark_jobs(ui_port, run_id):
                cancel_s = time.monotonic() - start
                break
            time.sleep(0.1)
        left = running_spark_jobs(ui_port, run_id) or []
        while time.monotonic() - start < 90:
            run = instance.get_run_by_id(run_id)
            if run is not None and run.is_finished:
                break
            time.sleep(0.5)
        run = instance.get_run_by_id(run_id)
        assert run is not None
        logs = [
            e.message for e in instance.all_logs(run_id) if e.message and "Spark" in e.message
        ]
        return {
            "cancel_s": None if cancel_s is None else round(cancel_s, 3),
            "run_status": run.status.value,
            "spark_jobs_left": len(left),
            "run_id": run_id,
            "logs": logs[-5:],
        }
