"""Terminating a run (as the UI does, through the instance) stops its Spark jobs."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pyspark.sql import SparkSession

from pysetl_dagster import PySparkSessionResource
from pysetl_dagster.spark.cancel import stop_watching, watch_run, watched_runs
from tests.e2e.test_dagster_dev import _free_port
from tests.fixtures.slow_pipeline import launch_and_terminate


def test_terminating_a_run_cancels_its_spark_jobs(tmp_path: Path) -> None:
    """Two independent slow Factories of one Stage run at once (threads over the run's
    session): terminating the run cancels both Spark jobs within 5 s."""
    outcome = launch_and_terminate(
        tmp_path / "home", _free_port(), seconds=120, terminate_after=1.0, factories=2
    )
    assert outcome["spark_jobs_at_terminate"] == 2, outcome
    assert outcome["cancel_s"] is not None and outcome["cancel_s"] <= 5, outcome
    assert outcome["spark_jobs_left"] == 0, outcome
    assert outcome["run_status"] == "CANCELED", outcome


def test_runs_on_a_stored_instance_are_watched_ephemeral_ones_are_not(
    spark: SparkSession, tmp_path: Path
) -> None:
    """The watcher polls run storage from a thread. An ephemeral instance (what `materialize()`
    uses) keeps runs in shared-cache in-memory SQLite, where that read made the run's own
    status update fail with "database table is locked: runs" (CI, 2026-11-23)."""

    @dg.asset
    def counted(pyspark: PySparkSessionResource) -> int:
        return pyspark.spark_session.range(3).count()

    resources = {"pyspark": PySparkSessionResource(master="local[2]", stop_at_exit=False)}
    ephemeral = dg.materialize([counted], resources=resources)
    assert ephemeral.success
    assert watch_run(dg.DagsterInstance.ephemeral(), ephemeral.run_id, spark) is None

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        stored = dg.materialize([counted], resources=resources, instance=instance)
        assert stored.success
        # the run's watcher is per-run state: released with the run
        assert stored.run_id not in watched_runs()
        # on a stored instance a watcher starts, and ends by itself once the run is finished
        watcher = watch_run(instance, stored.run_id, spark)
        assert watcher is not None and stored.run_id in watched_runs()
        watcher._thread.join(5)
        assert not watcher._thread.is_alive()
        stop_watching(stored.run_id)
        assert stored.run_id not in watched_runs()
