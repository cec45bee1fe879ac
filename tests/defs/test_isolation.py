"""PySetl keeps injected inputs on the Factory class: runs must still never see each other's."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import dagster as dg
from pyspark.sql import SparkSession

from pysetl_dagster import PySparkSessionResource, SparkParquetIOManager, pysetl_pipeline
from pysetl_dagster.spark.labels import no_leaked_spark_labels
from tests.fixtures import numbers_pipeline as numbers
from tests.fixtures.numbers_pipeline import build_numbers_pipeline, numbers_config


def _total(storage: Path) -> int:
    io = SparkParquetIOManager(base_path=str(storage))
    path = io.current_version_path(dg.AssetKey("total"))
    row = SparkSession.builder.getOrCreate().read.parquet(str(path)).first()
    assert row is not None
    return int(row["total"])


def _expected_total(n: int) -> int:
    return 2 * sum(range(n))


def _resources(storage: Path) -> dict[str, Any]:
    return {
        "pyspark": PySparkSessionResource(master="local[2]", stop_at_exit=False),
        "io_manager": SparkParquetIOManager(base_path=str(storage)),
    }


def test_same_pipeline_twice_in_one_process_with_different_inputs(
    spark: SparkSession, tmp_path: Path
) -> None:
    assets = pysetl_pipeline(build_numbers_pipeline(), name="numbers").assets
    # A native PySetl run first leaves its values on the Factory classes...
    with no_leaked_spark_labels(spark):  # PySetl sets a job group it never clears
        native = build_numbers_pipeline().run()
    assert native.get_output(numbers.Total).first()["total"] == _expected_total(3)
    # ...and neither Dagster run may read them, nor the other run's.
    for n, storage in ((5, tmp_path / "a"), (7, tmp_path / "b")):
        result = dg.materialize(assets, resources=_resources(storage), run_config=numbers_config(n))
        assert result.success
        assert _total(storage) == _expected_total(n)
    # a run never writes its inputs back to the class
    assert numbers.Doubled.numbers.get().count() == 3  # still the native run's value


def test_two_runs_at_once(spark: SparkSession, tmp_path: Path) -> None:
    """Both runs are held inside Doubled.read() at the same time, after each got its input."""
    assets = pysetl_pipeline(build_numbers_pipeline(), name="numbers").assets
    barrier = threading.Barrier(2, timeout=120)
    numbers.READ_HOOKS.append(barrier.wait)
    results: dict[int, bool] = {}
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            result = dg.materialize(
                assets, resources=_resources(tmp_path / str(n)), run_config=numbers_config(n)
            )
            results[n] = result.success
        except BaseException as exc:  # surfaced below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(n,)) for n in (4, 9)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=600)
    finally:
        numbers.READ_HOOKS.remove(barrier.wait)
    assert not errors, errors
    assert results == {4: True, 9: True}
    assert _total(tmp_path / "4") == _expected_total(4)
    assert _total(tmp_path / "9") == _expected_total(9)


def test_stage_job_takes_factory_config(spark: SparkSession, tmp_path: Path) -> None:
    job = pysetl_pipeline(build_numbers_pipeline(), name="numbers").stage_job
    assert job is not None
    result = job.execute_in_process(
        resources=_resources(tmp_path),
        run_config={"ops": {"numbers__stage_0": {"config": {"numbers": {"n": 6}}}}},
    )
    assert result.success
    assert _total(tmp_path) == _expected_total(6)
