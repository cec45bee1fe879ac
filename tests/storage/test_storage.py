"""The Parquet IO manager: versioned, atomic, and readable after a failed run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self, cast

import dagster as dg
import pytest
from pysetl.workflow import Delivery, Factory, Pipeline, Stage
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import LongType
from typedspark import DataSet

from pysetl_dagster import PySetlFactoryError, SparkParquetIOManager, pysetl_pipeline
from pysetl_dagster.storage.store import StorageBackend
from tests.fixtures.numbers_pipeline import NumberRow, Numbers, StubFactory, numbers_config


# useArrow=False: a plain Python UDF, as by default, without pyspark trying (and warning that
# it cannot) to infer a pandas UDF type from the `int` hints
@F.udf(LongType(), useArrow=False)
def _explode_on_big_values(value: int) -> int:
    """Runs in Spark's Python workers, during the write: fails the job half way through."""
    if value >= 10:
        raise RuntimeError("disk on fire")
    return value


class Fragile(StubFactory, Factory[int]):
    """Consumes the numbers and returns a plain int (stored as a pickle)."""

    numbers = Delivery[DataSet[NumberRow]]()


def _stored_rows(storage: Path, key: str) -> list[int]:
    io = SparkParquetIOManager(base_path=str(storage))
    df = SparkSession.builder.getOrCreate().read.parquet(
        str(io.current_version_path(dg.AssetKey(key)))
    )
    return sorted(r[0] for r in df.collect())


def _on(resources: dict[str, Any], fs_backend: str) -> dict[str, Any]:
    """The run's resources with the storage on one filesystem backend."""
    io = SparkParquetIOManager(
        base_path=resources["io_manager"].base_path, filesystem=cast(StorageBackend, fs_backend)
    )
    assert io.store.fs().kind == fs_backend
    return {**resources, "io_manager": io}


def test_failed_write_keeps_the_previous_version_current(
    spark: SparkSession, storage: Path, resources: dict[str, Any], fs_backend: str
) -> None:
    """A write that dies half way never replaces the stored output."""
    resources = _on(resources, fs_backend)

    class Exploding(Numbers):
        def get(self) -> Any:
            df = super().get()
            return df.select(_explode_on_big_values(F.col("value")).alias("value"))

    assets = pysetl_pipeline(
        Pipeline().add_stage(Stage().add_factory(Exploding())), name="fragile"
    ).assets
    run_config = {"ops": {"exploding": {"config": {"n": 4}}}}
    assert dg.materialize(assets, resources=resources, run_config=run_config).success
    assert _stored_rows(storage, "exploding") == [0, 1, 2, 3]

    run_config = {"ops": {"exploding": {"config": {"n": 50}}}}
    result = dg.materialize(
        assets, resources=resources, run_config=run_config, raise_on_error=False
    )
    assert not result.success
    assert result.get_asset_materialization_events() == []  # nothing recorded for a failed write
    assert _stored_rows(storage, "exploding") == [0, 1, 2, 3]


def test_versions_are_pruned_and_values_that_are_not_dataframes_are_pickled(
    spark: SparkSession, storage: Path, resources: dict[str, Any], fs_backend: str
) -> None:
    resources = _on(resources, fs_backend)
    assets = pysetl_pipeline(
        Pipeline()
        .add_stage(Stage().add_factory(Numbers()))
        .add_stage(Stage().add_factory(Fragile())),
        name="mixed",
    ).assets
    for n in (2, 3, 4):
        assert dg.materialize(assets, resources=resources, run_config=numbers_config(n)).success
    versions = [p for p in (storage / "numbers").iterdir() if p.is_dir()]
    assert len(versions) == 2  # keep_versions=2
    assert _stored_rows(storage, "numbers") == [0, 1, 2, 3]
    assert (storage / "fragile").is_dir()
    stored = list((storage / "fragile").glob("*/value.pickle"))
    assert stored, "a non-DataFrame output is stored as a pickle"


def test_factory_failure_names_the_factory_and_step(
    spark: SparkSession, resources: dict[str, Any]
) -> None:
    class Broken(Numbers):
        def process(self) -> Self:
            raise ValueError("bad business rule")

    assets = pysetl_pipeline(Pipeline().add_stage(Stage().add_factory(Broken())), name="b").assets
    with pytest.raises(
        PySetlFactoryError,
        match=r"Factory Broken \(asset broken\) failed in process\(\): ValueError: bad business",
    ):
        dg.materialize(assets, resources=resources)


def test_row_count_rides_on_the_write(spark: SparkSession, storage: Path) -> None:
    """The row count is observed while the output is written: no Spark job of its own."""
    assets = pysetl_pipeline(Pipeline().add_stage(Stage().add_factory(Numbers())), name="n").assets
    resources = {
        "pyspark": __import__("pysetl_dagster").PySparkSessionResource(stop_at_exit=False),
        "io_manager": SparkParquetIOManager(base_path=str(storage)),
    }
    result = dg.materialize(assets, resources=resources, run_config=numbers_config(5))
    (event,) = result.get_asset_materialization_events()
    assert event.materialization.metadata["dagster/row_count"].value == 5
    columns = event.materialization.metadata["dagster/column_schema"].schema.columns
    assert [(c.name, c.type) for c in columns] == [("value", "bigint")]
    jobs = spark.sparkContext.statusTracker().getJobIdsForGroup(f"numbers:{result.run_id}")
    assert len(jobs) == 1  # the Parquet write, nothing else
