"""The `dagster` CLI on the example project: what a user (or a schedule) actually runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from pyspark.sql import DataFrame, SparkSession

from pysetl_dagster import SparkParquetIOManager
from tests.conftest import ROOT, assert_same_data


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PYSETL_DAGSTER_STORAGE": str(tmp_path / "storage"),
        "PYTHONPATH": str(ROOT),
        "PYSPARK_PYTHON": sys.executable,
    }


def _dagster(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    dagster = str(Path(sys.executable).with_name("dagster"))
    result = subprocess.run(
        [dagster, *args, "-m", "definitions"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def _check_run(env: dict[str, str], native_outputs: dict[str, DataFrame]) -> None:
    io = SparkParquetIOManager(base_path=env["PYSETL_DAGSTER_STORAGE"])
    spark = SparkSession.builder.getOrCreate()
    for key, expected in native_outputs.items():
        stored = spark.read.parquet(str(io.current_version_path(dg.AssetKey([key]))))
        assert_same_data(stored, expected)
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        (run,) = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.SUCCESS
        records = instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        ).records
        assert len(records) == len(native_outputs)
        # One run, one process, one SparkContext (one JVM): a multi-process executor would
        # show a Spark application (and a pid) per step.
        app_ids = {
            r.event_log_entry.asset_materialization.metadata["spark/application_id"].value
            for r in records
        }
        pids = {r.event_log_entry.dagster_event.pid for r in records}
        assert len(app_ids) == 1, app_ids
        assert len(pids) == 1, pids


def test_dagster_asset_materialize(
    cli_env: dict[str, str], native_outputs: dict[str, DataFrame]
) -> None:
    _dagster(cli_env, "asset", "materialize", "--select", "group:retail")
    _check_run(cli_env, native_outputs)


def test_dagster_job_execute_stage_job(
    cli_env: dict[str, str], native_outputs: dict[str, DataFrame]
) -> None:
    _dagster(cli_env, "job", "execute", "-j", "retail_stages")
    _check_run(cli_env, native_outputs)
