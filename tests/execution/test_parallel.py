"""Independent Factories at the same time: a Stage's Factories in the Stage job, ready assets
in the asset job (threads over the one session), seen from Spark's own job records.

The Stage-0 Factories of `tests/fixtures/parallel_pipeline.py` wait inside their Spark task
until both have started: run one after another they would fail (barrier timeout), so a passing
run did overlap them, and the jobs' submission/completion times in Spark's status store show it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._core.definitions.reconstruct import reconstructable
from pyspark.sql import SparkSession

from pysetl_dagster import load_profile, pysetl_pipeline
from pysetl_dagster.errors import PySetlProfileError
from pysetl_dagster.spark.labels import job_ids_with_tag, no_leaked_spark_labels, step_tag
from tests.conftest import assert_same_data
from tests.fixtures.parallel_pipeline import (
    STAGE_0,
    Both,
    Evens,
    Odds,
    build_parallel_pipeline,
    parallel_assets_job,
)


def _status_store(spark: SparkSession) -> Any:
    jsc = spark.sparkContext._jsc.sc()  # type: ignore[union-attr]
    jsc.listenerBus().waitUntilEmpty(10_000)
    return jsc.statusStore()


def _jobs(spark: SparkSession, run_id: str, asset: str) -> list[Any]:
    store = _status_store(spark)
    return [store.job(i) for i in job_ids_with_tag(spark, step_tag(run_id, asset))]


def _interval(job: Any) -> tuple[int, int]:
    """When Spark submitted and completed the job (its own clock, ms)."""
    return int(job.submissionTime().get().getTime()), int(job.completionTime().get().getTime())


def _overlapped(spark: SparkSession, run_id: str) -> bool:
    """Whether a Spark job of each Stage-0 Factory ran while one of the other's ran."""
    evens, odds = ([_interval(j) for j in _jobs(spark, run_id, asset)] for asset in STAGE_0)
    return any(max(a[0], b[0]) < min(a[1], b[1]) for a in evens for b in odds)


def _barrier_config(folder: Path) -> dict[str, Any]:
    return {asset: {"barrier": str(folder)} for asset in STAGE_0}


def test_stage_runs_its_factories_at_once_each_with_its_own_labels_metrics_and_logs(
    spark: SparkSession, resources: dict[str, Any], tmp_path: Path
) -> None:
    stage_job = pysetl_pipeline(build_parallel_pipeline(), name="parallel").stage_job
    assert stage_job is not None
    instance = dg.DagsterInstance.ephemeral()
    result = stage_job.execute_in_process(
        run_config={"ops": {"parallel__stage_0": {"config": _barrier_config(tmp_path)}}},
        resources=resources,
        instance=instance,
    )
    assert result.success
    run_id = result.run_id
    assert _overlapped(spark, run_id)

    store = _status_store(spark)
    materialized = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    jobs_of = {asset: _jobs(spark, run_id, asset) for asset in STAGE_0}
    for asset in STAGE_0:
        other = next(a for a in STAGE_0 if a != asset)
        jobs = jobs_of[asset]
        assert jobs
        # labels: each job is the Factory's alone (tag, description, FAIR pool)
        assert not {j.jobId() for j in jobs} & {j.jobId() for j in jobs_of[other]}
        for job in jobs:
            assert str(job.description().get()).startswith(f"{asset} · ")
            for stage_id in str(job.stageIds().mkString(",")).split(","):
                stage = store.lastStageAttempt(int(stage_id))
                if stage.status().toString() != "SKIPPED":  # never submitted: no pool
                    assert stage.schedulingPool() == asset
        # metrics: only its own jobs and records (5 buckets written, 100 numbers read)
        meta = materialized[asset]
        assert meta["spark/jobs"].value == len(jobs)
        assert meta["spark/output_records"].value == 5
        assert meta["pysetl/driver_peak_shared"].value is True
    # logs: each Factory's records carry its own asset
    messages = [e.user_message for e in instance.all_logs(run_id)]
    for asset in STAGE_0:
        mine = [m for m in messages if m.endswith(f"summing the {asset}")]
        assert len(mine) == 1 and f"asset={asset} " in mine[0], mine
    assert "both" in materialized  # Stage 1 ran after both


def test_asset_job_runs_independent_factories_at_once_with_the_sequential_outputs(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with no_leaked_spark_labels(spark):
        native = build_parallel_pipeline().run()  # PySetl's own, one Factory after another
    expected = {
        name: native.get_output(factory).localCheckpoint()
        for name, factory in (("evens", Evens), ("odds", Odds), ("both", Both))
    }
    monkeypatch.setenv("PARALLEL_TEST_STORAGE", str(tmp_path / "storage"))
    with (
        dg.DagsterInstance.ephemeral() as instance,
        dg.execute_job(
            reconstructable(parallel_assets_job),
            instance=instance,
            run_config={"ops": {a: {"config": c} for a, c in _barrier_config(tmp_path).items()}},
        ) as result,
    ):
        assert result.success
        run_id = result.run_id
        engine = [e.message or "" for e in result.all_events if e.is_engine_event]
        stored = {
            e.asset_key.to_user_string(): str(
                e.step_materialization_data.materialization.metadata["path"].value
            )
            for e in result.all_events
            if e.is_step_materialization
        }
    assert any("on threads over one SparkSession" in m for m in engine), engine
    assert _overlapped(spark, run_id)
    assert set(stored) == set(expected)
    for name, df in expected.items():
        assert_same_data(spark.read.parquet(stored[name]), df)


def test_a_profile_sets_the_bound_on_the_spark_resource(tmp_path: Path) -> None:
    profile_file = tmp_path / "profiles.yaml"
    profile_file.write_text("base: {}\ndev:\n  spark: {max_concurrent_factories: 3}\n")
    assert load_profile(profile_file, "dev").spark_resource().max_concurrent_factories == 3
    assert load_profile(profile_file, "base").spark_resource().max_concurrent_factories == 4
    profile_file.write_text("dev:\n  spark: {max_concurrent_factories: 0}\n")
    with pytest.raises(PySetlProfileError, match="max_concurrent_factories"):
        load_profile(profile_file, "dev")
