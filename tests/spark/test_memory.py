"""Compute once with a Factory's own sink, the in-run handover, and memory metadata.

Counted from Spark: the scans of a Factory's input file come from Spark's SQL status store
(`count_input_scans`), persisted RDDs from the SparkContext.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Self

import dagster as dg
import pytest
from pysetl.config import ParquetConfig
from pysetl.enums import SaveMode
from pysetl.storage.repository import SparkRepository, SparkRepositoryBuilder
from pysetl.workflow import Delivery, Factory, Pipeline, Stage
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, LongType
from typedspark import Column, DataSet, Schema

from pysetl_dagster import PySparkSessionResource, SparkParquetIOManager, pysetl_pipeline
from pysetl_dagster.spark.labels import run_tag
from pysetl_dagster.spark.memory import (
    count_input_scans,
    executor_peak_memory_mb,
    local_jvm_peak_mb,
    spark_reported_peak_mb,
)
from tests.conftest import assert_same_data


class Total(Schema):
    key: Column[LongType]
    total: Column[DoubleType]


PATHS: dict[str, str] = {}
"""Where the Factories below read and write: set per test (never a session at import)."""


class SinkedTotals(Factory[DataSet[Total]]):
    """Totals per key, saved by the Factory itself through PySetl's SparkRepository, as PySetl's
    docs show (custom factories): other systems read that sink."""

    def read(self) -> Self:
        self.events = SparkSession.builder.getOrCreate().read.parquet(PATHS["input"])
        return self

    def process(self) -> Self:
        totals = self.events.groupBy("key").agg(F.sum("amount").alias("total"))
        self.output = DataSet[Total](totals)
        return self

    def write(self) -> Self:
        if PATHS.get("fail_write"):
            raise RuntimeError("the sink is unreachable")
        config = ParquetConfig(storage="PARQUET", path=PATHS["sink"], savemode=SaveMode.OVERWRITE)
        repository: SparkRepository[Total] = SparkRepositoryBuilder[Total](config).build().get()
        repository.save(self.output)
        return self

    def get(self) -> DataSet[Total]:
        return self.output


class Doubled(Factory[DataFrame]):
    totals = Delivery[DataSet[Total]]()

    def read(self) -> Self:
        self.src = self.totals.get()
        return self

    def process(self) -> Self:
        self.out = self.src.withColumn("doubled", F.col("total") * 2)
        return self

    def write(self) -> Self:
        return self

    def get(self) -> DataFrame:
        return self.out


@pytest.fixture
def events(spark: SparkSession, tmp_path: Path) -> Path:
    path = tmp_path / f"events_{uuid.uuid4().hex[:8]}"
    spark.range(5000).select(
        (F.col("id") % 7).alias("key"), (F.col("id") * 0.5).alias("amount")
    ).write.parquet(str(path))
    PATHS.clear()
    PATHS.update(input=str(path), sink=str(tmp_path / "sink"))
    return path


def _resources(storage: Path, **fields: Any) -> tuple[dict[str, Any], SparkParquetIOManager]:
    io = SparkParquetIOManager(base_path=str(storage), **fields)
    spark_resource = PySparkSessionResource(master="local[2]", stop_at_exit=False)
    return {"pyspark": spark_resource, "io_manager": io}, io


def _float(meta: Any, key: str) -> float:
    value = meta[key].value
    assert isinstance(value, float), f"{key}: {value!r}"
    return value


def _wait_for_executor_metrics(spark: SparkSession, timeout: float = 30) -> None:
    """Spark reports executor memory with its heartbeats (every 10 s by default): in a fresh
    session, wait (bounded) for the first, so the metadata below must carry it."""
    deadline = time.monotonic() + timeout
    while spark_reported_peak_mb(spark) is None and time.monotonic() < deadline:
        spark.range(10).count()
        time.sleep(0.5)


def _persisted_rdds(spark: SparkSession) -> int:
    return int(spark.sparkContext._jsc.sc().getPersistentRDDs().size())


def _materialize(
    resources: dict[str, Any], *factories: Factory[Any], raise_on_error: bool = True
) -> dg.ExecuteInProcessResult:
    pipeline = Pipeline()
    for factory in factories:
        pipeline.add_stage(Stage().add_factory(factory))
    defs = pysetl_pipeline(pipeline, name=f"memory_{uuid.uuid4().hex[:6]}")
    return dg.materialize(defs.assets, resources=resources, raise_on_error=raise_on_error)


@pytest.mark.parametrize("own_sink", ["deferred", "persist"])
def test_own_sink_computed_once(
    spark: SparkSession, events: Path, storage: Path, own_sink: str
) -> None:
    resources, io = _resources(storage, own_sink=own_sink)
    persisted_before = _persisted_rdds(spark)
    _wait_for_executor_metrics(spark)
    result = _materialize(resources, SinkedTotals())

    key = dg.AssetKey(["sinked_totals"])
    stored = spark.read.parquet(str(io.current_version_path(key)))
    assert stored.count() == 7
    assert_same_data(spark.read.parquet(PATHS["sink"]), stored)
    # one scan of the input for both the sink and the stored version
    assert count_input_scans(spark, events.name, run_tag(result.run_id)) == 1
    assert _persisted_rdds(spark) == persisted_before

    (event,) = result.get_asset_materialization_events()
    meta = event.materialization.metadata
    assert 50 < _float(meta, "pysetl/driver_peak_rss_mb") < 64_000  # Python + its JVM
    assert 0 < _float(meta, "spark/executor_peak_memory_mb") < 64_000
    assert spark_reported_peak_mb(spark) is not None  # the figure above is Spark's own


def test_local_jvm_peak_bounds_sparks_figure(spark: SparkSession) -> None:
    _wait_for_executor_metrics(spark)
    reported = spark_reported_peak_mb(spark)
    local = local_jvm_peak_mb(spark)
    assert reported is not None and local is not None
    # per-pool peaks summed: never below Spark's sampled heap + non-heap figure
    assert reported <= local < 64_000
    assert executor_peak_memory_mb(spark) == reported
    assert executor_peak_memory_mb(None) is None


_BEFORE_HEARTBEAT = """
from pyspark.sql import SparkSession
from pysetl_dagster.spark.memory import executor_peak_memory_mb, spark_reported_peak_mb
spark = (SparkSession.builder.master("local[1]")
         .config("spark.executor.heartbeatInterval", "100s")
         .config("spark.network.timeout", "200s")
         .config("spark.ui.enabled", "false").getOrCreate())
spark.range(1000).count()
print(spark_reported_peak_mb(spark), executor_peak_memory_mb(spark))
spark.stop()
"""


def test_local_executor_peak_is_known_before_the_first_heartbeat() -> None:
    """A fresh session whose first heartbeat is far away: the local JVM's pool peaks stand in,
    so the metadata keys of a materialization never depend on timing."""
    out = subprocess.run(
        [sys.executable, "-c", _BEFORE_HEARTBEAT],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout.split()
    reported, figure = out[-2], out[-1]
    assert reported == "None"
    assert 0 < float(figure) < 64_000


def test_inline_own_sink_scans_twice(spark: SparkSession, events: Path, storage: Path) -> None:
    """The control: without compute-once, the lineage (and its input scan) runs twice."""
    resources, _ = _resources(storage, own_sink="inline")
    result = _materialize(resources, SinkedTotals())
    assert count_input_scans(spark, events.name, run_tag(result.run_id)) == 2


@pytest.mark.parametrize("own_sink", ["deferred", "persist"])
def test_failing_own_sink_releases_and_publishes_nothing(
    spark: SparkSession, events: Path, storage: Path, own_sink: str
) -> None:
    PATHS["fail_write"] = "yes"
    resources, io = _resources(storage, own_sink=own_sink)
    persisted_before = _persisted_rdds(spark)
    result = _materialize(resources, SinkedTotals(), raise_on_error=False)
    assert not result.success
    assert "the sink is unreachable" in str(result.all_events)
    assert io.current_manifest(dg.AssetKey(["sinked_totals"])) is None
    assert _persisted_rdds(spark) == persisted_before


@pytest.mark.parametrize("handover", ["stored", "memory"])
def test_in_run_handover(spark: SparkSession, events: Path, storage: Path, handover: str) -> None:
    """Downstream gets the published data either way; "memory" does not read the stored
    version back, and releases what it persisted when the run ends."""
    resources, io = _resources(storage, in_run_handover=handover)
    persisted_before = _persisted_rdds(spark)
    result = _materialize(resources, SinkedTotals(), Doubled())
    assert result.success
    totals_path = io.current_version_path(dg.AssetKey(["sinked_totals"]))
    doubled = spark.read.parquet(str(io.current_version_path(dg.AssetKey(["doubled"]))))
    expected = spark.read.parquet(str(totals_path)).withColumn("doubled", F.col("total") * 2)
    assert_same_data(doubled, expected)
    read_back = count_input_scans(spark, totals_path.name, run_tag(result.run_id))
    # "stored": the own sink and the consumer read the stored version; "memory": only the sink
    assert read_back == (2 if handover == "stored" else 1)
    assert count_input_scans(spark, events.name, run_tag(result.run_id)) == 1
    assert _persisted_rdds(spark) == persisted_before


def test_memory_handover_never_hands_over_a_rejected_version(
    spark: SparkSession, storage: Path
) -> None:
    from pysetl_dagster import Validation
    from tests.fixtures.validation_pipeline import people_factories, person_schema, variant_config

    people, consumer = people_factories(Validation(person_schema(), blocking=True))
    pipeline = (
        Pipeline().add_stage(Stage().add_factory(people)).add_stage(Stage().add_factory(consumer))
    )
    defs = pysetl_pipeline(pipeline, name="memory_rejected")
    resources, io = _resources(storage, in_run_handover="memory")
    persisted_before = _persisted_rdds(spark)
    bad = dg.materialize(
        defs.assets, resources=resources, run_config=variant_config("bad"), raise_on_error=False
    )
    assert not bad.success
    started = {e.step_key for e in bad.all_events if e.event_type_value == "STEP_START"}
    assert started == {"people"}  # the consumer never ran
    assert io.current_manifest(dg.AssetKey("people")) is None
    assert _persisted_rdds(spark) == persisted_before  # released at the end of the run


class FreshTotals(SinkedTotals):
    """`get()` builds a new object each call: no attribute holds it, so the deferred own sink
    cannot point `write()` at the stored version and falls back to persisting."""

    def get(self) -> DataSet[Total]:
        return DataSet[Total](self.output)


def test_deferred_own_sink_falls_back_to_persist(
    spark: SparkSession, events: Path, storage: Path
) -> None:
    resources, io = _resources(storage)
    persisted_before = _persisted_rdds(spark)
    result = _materialize(resources, FreshTotals())
    stored = spark.read.parquet(str(io.current_version_path(dg.AssetKey(["fresh_totals"]))))
    assert_same_data(spark.read.parquet(PATHS["sink"]), stored)
    assert count_input_scans(spark, events.name, run_tag(result.run_id)) == 1
    assert _persisted_rdds(spark) == persisted_before
