"""Partitioned Factories (daily and static), the latest-partition schedule, templates and
extension: real materializations against real storage and a real DagsterInstance."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import dagster as dg
import pytest
from pysetl.workflow import Factory
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from typedspark import DataSet

from pysetl_dagster import (
    PySetlDefinitionError,
    SparkParquetIOManager,
    build_definitions,
    extend_pipeline,
    pysetl_pipeline,
    pysetl_template,
)
from tests.fixtures.numbers_pipeline import (
    Doubled,
    DoubledRow,
    Numbers,
    Total,
    TotalRow,
    build_numbers_pipeline,
)
from tests.fixtures.partitioned_pipeline import (
    Events,
    Regions,
    build_daily_pipeline,
    build_events_pipeline,
)

DAYS = ["2024-01-02", "2024-01-03", "2024-01-04"]


def _stored(storage: Path, asset: str) -> list[str]:
    return sorted(p.name for p in (storage / asset).iterdir() if not p.name.startswith("_"))


def _read_current(resources: dict[str, Any], key: str, partition: str | None = None) -> Any:
    io: SparkParquetIOManager = resources["io_manager"]
    manifest = io.current_manifest(dg.AssetKey(key), partition)
    assert manifest is not None
    return io.read_version(io.asset_dir(dg.AssetKey(key), partition) / manifest["version"])


def test_declared_partitions_reach_the_asset_specs_and_jobs(tmp_path: Path) -> None:
    events = pysetl_pipeline(build_events_pipeline(), name="events")
    specs = {s.key.to_user_string(): s for s in events.translated.factory_specs.values()}
    assert isinstance(specs["events"].partitions_def, dg.DailyPartitionsDefinition)
    assert specs["day_counts"].partitions_def == specs["events"].partitions_def
    assert specs["all_days"].partitions_def is None
    # partitioned and unpartitioned Factories mixed: no Stage job, the asset job carries the days
    assert events.stage_job is None
    # (Dagster infers an asset job's partitions from its assets when the definitions load)
    defs = build_definitions(events, storage_path=str(tmp_path))
    assert defs.resolve_job_def("events_assets").partitions_def == specs["events"].partitions_def
    with pytest.raises(
        PySetlDefinitionError, match=r"'events' cannot have a Stage job.*events_assets"
    ):
        pysetl_pipeline(build_events_pipeline(), name="events", stage_job=True)


def test_bad_partitions_declaration_names_the_factory() -> None:
    class Broken(Events):
        partitions = "daily"  # type: ignore[assignment]

    with pytest.raises(PySetlDefinitionError, match=r"Factory Broken: `partitions = 'daily'`"):
        pysetl_pipeline([Broken()], name="broken")

    class SparkCount(Events):
        partitions = 8  # type: ignore[assignment]  # a Spark partition count, not a declaration

    spec = pysetl_pipeline([SparkCount()], name="counted").translated.factory_specs
    assert [s.partitions_def for s in spec.values()] == [None]


def test_backfill_of_three_daily_partitions_writes_three_partitions(
    spark: SparkSession, resources: dict[str, Any], storage: Path, tmp_path: Path
) -> None:
    events = pysetl_pipeline(build_events_pipeline(), name="events")
    defs = build_definitions(events, resources=resources)
    job = defs.resolve_job_def("events_assets")
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        # one partition first: only its folder is written
        first = job.execute_in_process(
            instance=instance, partition_key=DAYS[0], asset_selection=[dg.AssetKey("events")]
        )
        assert first.success
        assert _stored(storage, "events") == [DAYS[0]]
        # a backfill of the three days (one run per partition, as the UI's backfill launches)
        for day in DAYS:
            result = job.execute_in_process(
                instance=instance,
                partition_key=day,
                asset_selection=[dg.AssetKey("events"), dg.AssetKey("day_counts")],
                tags={"dagster/backfill": "test-backfill"},
            )
            assert result.success
        assert _stored(storage, "events") == DAYS
        assert _stored(storage, "day_counts") == DAYS
        materialized = instance.get_materialized_partitions(dg.AssetKey("day_counts"))
        assert materialized == set(DAYS)
    for day in DAYS:
        rows = _read_current(resources, "events", day).collect()
        assert sorted(r.value for r in rows) == [0, 1, 2]
        assert {r.day for r in rows} == {day}  # the Factory got the partition key of the run
        counts = _read_current(resources, "day_counts", day).collect()
        assert [(r.day, r.events) for r in counts] == [(day, 3)]


def test_a_partition_materialized_again_is_a_cache_hit_of_that_partition_only(
    spark: SparkSession, resources: dict[str, Any], storage: Path
) -> None:
    """Partitions are cached one by one: the key includes the partition, the stored versions
    live per partition."""
    from pysetl_dagster.spark.labels import spark_jobs_submitted

    assets = pysetl_pipeline(build_events_pipeline(), name="events").assets
    io: SparkParquetIOManager = resources["io_manager"]
    events = dg.AssetKey("events")

    def run(day: str) -> bool:
        result = dg.materialize(assets, resources=resources, partition_key=day, selection=[events])
        assert result.success
        (event,) = result.get_asset_materialization_events()
        assert event.partition == day
        return bool(event.materialization.metadata["pysetl/cached"].value)

    assert run(DAYS[0]) is False
    version = io.current_version_path(events, DAYS[0])
    before = spark_jobs_submitted(spark)
    assert run(DAYS[0]) is True  # the same partition again: reused, no Spark job
    assert spark_jobs_submitted(spark) == before
    assert io.current_version_path(events, DAYS[0]) == version
    assert run(DAYS[1]) is False  # another partition: computed
    assert _stored(storage, "events") == DAYS[:2]


def test_unpartitioned_consumer_reads_every_stored_partition(
    spark: SparkSession, resources: dict[str, Any], storage: Path
) -> None:
    events = pysetl_pipeline(build_events_pipeline(), name="events")
    assets = events.assets
    for day in DAYS[:2]:
        assert dg.materialize(
            assets, resources=resources, partition_key=day, selection=[dg.AssetKey("events")]
        ).success
    result = dg.materialize(assets, resources=resources, selection=[dg.AssetKey("all_days")])
    assert result.success
    counts = _read_current(resources, "all_days").collect()
    assert sorted((r.day, r.events) for r in counts) == [(DAYS[0], 3), (DAYS[1], 3)]


def test_daily_pipeline_stage_job_runs_one_partition(
    spark: SparkSession, resources: dict[str, Any], storage: Path
) -> None:
    daily_events = pysetl_pipeline(build_daily_pipeline(), name="daily_events")
    assert daily_events.stage_job is not None
    defs = build_definitions(daily_events, resources=resources)
    result = defs.resolve_job_def("daily_events_stages").execute_in_process(partition_key=DAYS[1])
    assert result.success
    assert _stored(storage, "events") == [DAYS[1]]
    assert _stored(storage, "day_counts") == [DAYS[1]]
    counts = _read_current(resources, "day_counts", DAYS[1]).collect()
    assert [(r.day, r.events) for r in counts] == [(DAYS[1], 3)]


def test_static_partitions_give_the_factory_its_key(
    spark: SparkSession, resources: dict[str, Any], storage: Path
) -> None:
    regions = pysetl_pipeline([Regions()], name="regions")
    for region in ("eu", "us"):
        assert dg.materialize(regions.assets, resources=resources, partition_key=region).success
    assert _stored(storage, "regions") == ["eu", "us"]
    assert [r.region for r in _read_current(resources, "regions", "us").collect()] == ["us"]


def test_latest_partition_schedule_requests_the_latest_day(tmp_path: Path) -> None:
    events = pysetl_pipeline(build_events_pipeline(), name="events")
    schedule = events.latest_partition_schedule(hour_of_day=1)
    assert schedule.name == "events_latest_partition"
    defs = build_definitions(events, storage_path=str(tmp_path))
    loaded = defs.resolve_schedule_def("events_latest_partition")
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2024, 3, 5, 1, 0, tzinfo=UTC)
        )
        data = loaded.evaluate_tick(context)
    assert data.run_requests is not None and len(data.run_requests) == 1
    assert data.run_requests[0].partition_key == "2024-03-04"
    assert loaded.cron_schedule == "0 1 * * *"

    regions = pysetl_pipeline([Regions()], name="regions")
    with pytest.raises(PySetlDefinitionError, match=r"'regions_assets' has no time partitions"):
        regions.latest_partition_schedule()


def _numbers_for(region: str, factor: int = 1) -> Any:
    from pysetl.workflow import Pipeline, Stage

    class Scaled(Total):
        """Total times a per-instance factor (a parameter of the template)."""

        def __init__(self, factor: int) -> None:
            super().__init__()
            self.factor = factor

        def process(self) -> Self:
            total = F.sum("doubled").cast("long") * F.lit(self.factor)
            self.out = DataSet[TotalRow](self.src.agg(total.alias("total")))
            return self

    return (
        Pipeline()
        .add_stage(Stage().add_factory(Numbers()))
        .add_stage(Stage().add_factory(Doubled()))
        .add_stage(Stage().add_factory(Scaled(factor)))
    )


def build_regional(factor: int) -> Any:
    return _numbers_for("", factor)


def test_template_instances_have_distinct_keys_and_configs_and_both_materialize(
    spark: SparkSession, resources: dict[str, Any], storage: Path
) -> None:
    template = pysetl_template(build_regional, name="sales")
    eu = template.instance("eu", factor=1, factory_config={Numbers: {"n": 3}})
    us = template.instance("us", factor=10, factory_config={Numbers: {"n": 5}})
    defs = build_definitions(eu, us, resources=resources)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == {
        "eu/numbers",
        "eu/doubled",
        "eu/scaled",
        "us/numbers",
        "us/doubled",
        "us/scaled",
    }
    groups = {s.group_name for p in (eu, us) for s in p.translated.factory_specs.values()}
    assert groups == {"sales_eu", "sales_us"}
    for job in ("sales_eu_assets", "sales_us_assets"):
        assert defs.resolve_job_def(job).execute_in_process().success
    # each instance ran with its own config (n) and parameter (factor)
    eu_total = _read_current(resources, "eu/scaled").first().total
    us_total = _read_current(resources, "us/scaled").first().total
    assert (eu_total, us_total) == (2 * (0 + 1 + 2), 10 * 2 * (0 + 1 + 2 + 3 + 4))
    # the Stage job of an instance carries its config too
    assert defs.resolve_job_def("sales_us_stages").execute_in_process().success
    assert _read_current(resources, "us/scaled").first().total == us_total


class Tripled(Doubled):
    """Replaces Doubled: the 'doubled' column holds three times the value."""

    def process(self) -> Self:
        self.out = DataSet[DoubledRow](self.src.withColumn("doubled", F.col("value") * 3))
        return self


class Audit(Factory[int]):
    """Added Factory: counts the totals (an extension, no copy of the pipeline)."""

    from pysetl.workflow import Delivery as _D

    total = _D[DataSet[TotalRow]]()

    def read(self) -> Self:
        return self

    def process(self) -> Self:
        self.out = self.total.get().count()
        return self

    def write(self) -> Self:
        return self

    def get(self) -> int:
        return self.out


def test_extension_replaces_and_adds_factories_without_touching_the_original(
    spark: SparkSession, resources: dict[str, Any]
) -> None:
    original = build_numbers_pipeline()
    base = pysetl_pipeline(original, name="base", factory_config={Numbers: {"n": 4}})
    extended = base.extend("extended", add=[Audit], replace={Doubled: Tripled}, translator=None)
    assert [type(f) for s in original.stages for f in s.factories] == [Numbers, Doubled, Total]
    assert [n.name for n in extended.graph.nodes] == ["Numbers", "Tripled", "Total", "Audit"]
    ext_prefixed = pysetl_pipeline(
        extend_pipeline(original, replace={Doubled: Tripled}),
        name="tripled",
        translator=__import__("pysetl_dagster").PySetlTranslator("tripled"),
    )
    defs = build_definitions(extended, ext_prefixed, resources=resources)
    assert defs.resolve_job_def("extended_assets").execute_in_process().success
    # Tripled in Doubled's place, and base's Factory config (n=4) kept
    assert _read_current(resources, "total").first().total == 3 * (0 + 1 + 2 + 3)
    assert defs.resolve_job_def("tripled_stages").execute_in_process().success
    assert _read_current(resources, "tripled/total").first().total == 3 * (0 + 1 + 2)
    with pytest.raises(PySetlDefinitionError, match=r"names \['Audit'\], which the pipeline"):
        extend_pipeline(original, replace={Audit: Tripled})


def test_example_template_instances_and_daily_partitions(
    spark: SparkSession, resources: dict[str, Any], storage: Path, tmp_path: Path
) -> None:
    import definitions
    from definitions.regional import AMERICAS, EUROPE, regional_pipelines

    europe, americas, daily_orders = regional_pipelines()
    defs = build_definitions(
        definitions.retail, europe, americas, daily_orders, resources=resources
    )
    job_names = {j.name for j in defs.resolve_all_job_defs()}
    assert {
        "regional_europe_assets",
        "regional_americas_stages",
        "daily_orders_assets",
    } <= job_names
    for job in ("regional_europe_assets", "regional_americas_assets"):
        assert defs.resolve_job_def(job).execute_in_process().success
    eu = _read_current(resources, "europe/region_orders")
    am = _read_current(resources, "americas/region_orders")
    assert {r.country for r in eu.select("country").distinct().collect()} <= set(EUROPE)
    assert {r.country for r in am.select("country").distinct().collect()} <= set(AMERICAS)
    assert eu.count() > 0 and am.count() > 0
    assert am.where("quantity < 2").count() == 0  # the americas instance's own config

    days = ["2024-07-01", "2024-07-02"]
    daily_job = defs.resolve_job_def("daily_orders_assets")
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        for day in days:
            assert daily_job.execute_in_process(instance=instance, partition_key=day).success
        assert instance.get_materialized_partitions(dg.AssetKey("daily_orders")) == set(days)
    assert _stored(storage, "daily_orders") == days
    # clean_orders is unpartitioned: one output, even when it ran in partitioned runs
    assert "_current.json" in {p.name for p in (storage / "clean_orders").iterdir()}
    clean = _read_current(resources, "clean_orders")
    per_day = {
        str(r.order_date): r.orders for r in _read_current(resources, "orders_per_day").collect()
    }
    assert per_day == {d: clean.where(F.col("order_date") == d).count() for d in days}
    assert all(n > 0 for n in per_day.values())


def test_dagster_cli_backfill_of_three_daily_partitions(tmp_path: Path) -> None:
    """A real backfill: `dagster job backfill` on the example's daily job, one run per
    partition launched by the instance (DefaultRunCoordinator: no daemon needed)."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "run_coordinator:\n  module: dagster._core.run_coordinator\n"
        "  class: DefaultRunCoordinator\ntelemetry:\n  enabled: false\n"
    )
    storage = tmp_path / "storage"
    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PYSETL_DAGSTER_STORAGE": str(storage),
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("RETAIL_DATA_DIR", None)
    days = ["2024-07-01", "2024-07-02", "2024-07-03"]
    dagster = Path(sys.executable).with_name("dagster")
    cmd = [str(dagster), "job", "backfill", "-m", "definitions", "-j", "daily_orders_assets",
           "--partitions", ",".join(days), "--noprompt"]  # fmt: skip
    launched = subprocess.run(
        cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert "Launched backfill job" in launched.stdout + launched.stderr
    with dg.DagsterInstance.from_config(str(home)) as instance:
        deadline = time.monotonic() + 420
        while True:
            runs = instance.get_runs()
            if len(runs) == 3 and all(r.is_finished for r in runs):
                break
            assert time.monotonic() < deadline, [(r.run_id, r.status) for r in runs]
            time.sleep(0.5)
        assert {r.tags["dagster/partition"] for r in runs} == set(days)
        assert len({r.tags["dagster/backfill"] for r in runs}) == 1
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        assert instance.get_materialized_partitions(dg.AssetKey("daily_orders")) == set(days)
    assert _stored(storage, "daily_orders") == days
