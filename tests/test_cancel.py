"""Terminating a run (as the UI does, through the instance) stops its Spark jobs."""

from __future__ import annotations

from pathlib import Path

from tests.slow_pipeline import launch_and_terminate
from tests.test_dagster_dev import _free_port


def test_terminating_a_run_cancels_its_spark_job(tmp_path: Path) -> None:
    outcome = launch_and_terminate(
        tmp_path / "home", _free_port(), seconds=120, terminate_after=1.0
    )
    assert outcome["cancel_s"] is not None and outcome["cancel_s"] <= 5, outcome
    assert outcome["spark_jobs_left"] == 0, outcome
    assert outcome["run_status"] == "CANCELED", outcome
