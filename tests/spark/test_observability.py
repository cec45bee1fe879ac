"""Every Spark job of a run is labelled, labels never leak, metrics and errors come from Spark."""

from __future__ import annotations

import time
from typing import Any, Self

import dagster as dg
from pysetl.workflow import Pipeline, Stage
from pyspark import InheritableThread
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from typedspark import DataSet

from pysetl_dagster import PySparkSessionResource, SparkParquetIOManager, pysetl_pipeline
from pysetl_dagster.execution.logs import DagsterRunLogHandler
from pysetl_dagster.spark.labels import (
    ASSET_TAG_PREFIX,
    active_job_ids_with_tag,
    no_leaked_spark_labels,
    run_tag,
    step_tag,
)
from pysetl_dagster.storage.caching import FORCE_TAG
from tests.fixtures.numbers_pipeline import (
    Doubled,
    DoubledRow,
    Numbers,
    Total,
    build_numbers_pipeline,
    numbers_config,
)

LABELS = ("spark.jobGroup.id", "spark.job.description", "spark.job.interruptOnCancel")


def _all_jobs(spark: SparkSession) -> list[Any]:
    """Spark's own record (its status store, what the UI shows) of every retained job."""
    jsc = spark.sparkContext._jsc.sc()
    jsc.listenerBus().waitUntilEmpty(10_000)
    jobs, it = [], jsc.statusStore().jobsList(None).iterator()
    while it.hasNext():
        jobs.append(it.next())
    return jobs


def _max_job_id(spark: SparkSession) -> int:
    return max((int(j.jobId()) for j in _all_jobs(spark)), default=-1)


def _jobs_after(spark: SparkSession, after: int) -> list[Any]:
    return [j for j in _all_jobs(spark) if int(j.jobId()) > after]


def _assert_thread_clean(spark: SparkSession) -> None:
    sc = spark.sparkContext
    assert {p: sc.getLocalProperty(p) for p in LABELS} == dict.fromkeys(LABELS)
    assert set(sc.getJobTags()) == set()
    assert set(spark.getTags()) == set()


def test_every_spark_job_of_a_run_carries_run_and_asset_tags(
    spark: SparkSession, resources: dict[str, Any]
) -> None:
    class CountedNumbers(Numbers):
        def process(self) -> Self:
            super().process()
            self.out.count()  # a job inside the Factory
            return self

    pipeline = (
        Pipeline()
        .add_stage(Stage().add_factory(CountedNumbers()))
        .add_stage(Stage().add_factory(Doubled()))
        .add_stage(Stage().add_factory(Total()))
    )
    assets = pysetl_pipeline(pipeline, name="labelled").assets
    before = _max_job_id(spark)
    result = dg.materialize(
        assets, resources=resources, run_config={"ops": {"counted_numbers": {"config": {"n": 5}}}}
    )
    assert result.success
    jobs = _jobs_after(spark, before)
    # the Factory's count + 3 writes at least (row counts ride on the writes); reads included.
    assert len(jobs) >= 4
    unlabelled = []
    for job in jobs:
        tags = set(job.jobTags().mkString("\n").split("\n"))
        desc = job.description()
        if (
            run_tag(result.run_id) not in tags
            or not any(t.startswith(ASSET_TAG_PREFIX) for t in tags)
            or not desc.isDefined()
        ):
            unlabelled.append((job.jobId(), sorted(tags), desc))
    assert unlabelled == []
    by_asset = {
        asset: [j for j in jobs if step_tag(result.run_id, asset) in j.jobTags().mkString("\n")]
        for asset in ("counted_numbers", "doubled", "total")
    }
    assert all(by_asset.values()), by_asset
    descriptions = {str(j.description().get()) for j in jobs}
    assert any("CountedNumbers.process()" in d for d in descriptions), descriptions
    assert any("store " in d for d in descriptions), descriptions
    _assert_thread_clean(spark)


def test_a_factory_that_raises_leaves_no_job_running_and_no_labels(
    spark: SparkSession, resources: dict[str, Any]
) -> None:
    @F.udf("long", useArrow=False)
    def slow(x: int) -> int:
        import time

        time.sleep(0.05)
        return x

    class Raises(Numbers):
        def process(self) -> Self:
            session = SparkSession.builder.getOrCreate()
            # A job on a thread that inherits the Factory's labels, still running on raise.
            df = session.range(0, 20_000, numPartitions=2).select(slow("id").alias("x"))

            def until_cancelled() -> None:
                try:
                    df.agg(F.sum("x")).collect()
                except Exception as exc:  # the cancel below is expected; anything else is not
                    if "SPARK_JOB_CANCELLED" not in str(exc):
                        raise

            InheritableThread(target=until_cancelled, daemon=True).start()
            deadline = time.monotonic() + 30
            while not session.sparkContext.statusTracker().getActiveJobsIds():
                assert time.monotonic() < deadline, "the background job never started"
                time.sleep(0.1)
            raise ValueError("boom")

    assets = pysetl_pipeline(Pipeline().add_stage(Stage().add_factory(Raises())), name="r").assets
    result = dg.materialize(assets, resources=resources, raise_on_error=False)
    assert not result.success
    tag = run_tag(result.run_id)
    deadline = time.monotonic() + 5
    while active_job_ids_with_tag(spark, tag) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert active_job_ids_with_tag(spark, tag) == []
    tracker = spark.sparkContext._jsc.sc().statusTracker()
    assert list(tracker.getJobIdsForTag(tag)), "the background job did not carry the run tag"
    _assert_thread_clean(spark)


def test_pysetl_job_group_does_not_leak(spark: SparkSession) -> None:
    sc = spark.sparkContext
    seen: list[str | None] = []

    class Spy(Numbers):
        def process(self) -> Self:
            seen.append(sc.getLocalProperty("spark.jobGroup.id"))
            return super().process()

    pipeline = Pipeline().add_stage(Stage().add_factory(Spy()))
    with no_leaked_spark_labels(spark):
        pipeline.run()
    assert seen and seen[0], "PySetl's Stage sets a job group (the leak this guards against)"
    _assert_thread_clean(spark)
    before = _max_job_id(spark)
    spark.range(3).count()
    jobs = _jobs_after(spark, before)
    assert jobs and not any(job.jobGroup().isDefined() for job in jobs)


def test_native_baseline_leaves_no_job_group(spark: SparkSession, native_outputs: Any) -> None:
    assert native_outputs
    _assert_thread_clean(spark)


def test_materialization_metadata_has_spark_metrics(
    spark: SparkSession, resources: dict[str, Any]
) -> None:
    assets = pysetl_pipeline(build_numbers_pipeline(), name="metrics").assets
    debug_io = SparkParquetIOManager(base_path=resources["io_manager"].base_path, debug_plans=True)
    result = dg.materialize(
        assets, resources={**resources, "io_manager": debug_io}, run_config=numbers_config(1000)
    )
    assert result.success
    meta: dict[str, Any] = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    numbers: dict[str, Any] = dict(meta["numbers"])
    assert numbers["spark/output_records"].value == 1000
    assert numbers["spark/jobs"].value >= 1
    assert numbers["spark/tasks"].value >= numbers["spark/stages"].value >= 1
    assert numbers["spark/output_bytes"].value > 0
    assert numbers["spark/executor_run_time_ms"].value >= 0
    assert meta["total"]["spark/output_records"].value == 1
    assert "Range" in numbers["spark/plan"].value  # debug mode: the formatted Spark plan
    diagram = meta["doubled"]["pysetl/diagram"].value  # ... and the pipeline, this one marked
    assert diagram.startswith("```mermaid\nflowchart LR") and "Doubled<br/>doubled" in diagram
    assert "stroke-width:3px" in diagram
    # Doubled reads numbers' stored version: its input records are numbers' rows.
    assert meta["doubled"]["spark/input_records"].value == 1000
    for step in ("pysetl/read_s", "pysetl/process_s", "pysetl/store_s"):
        assert isinstance(numbers[step].value, float)


def test_a_failing_factory_names_factory_stage_inputs_and_spark_stage(
    spark: SparkSession, resources: dict[str, Any]
) -> None:
    @F.udf("long", useArrow=False)
    def explode_on_two(x: int) -> int:
        if x == 2:
            raise ValueError("value 2 is not allowed")
        return x

    class BreaksDoubled(Doubled):
        def process(self) -> Self:
            super().process()
            self.out = DataSet[DoubledRow](
                self.out.withColumn("doubled", explode_on_two(F.col("value")))
            )
            return self

    pipeline = Pipeline().add_stage(Stage().add_factory(Numbers()))
    pipeline.add_stage(Stage().add_factory(BreaksDoubled()))
    assets = pysetl_pipeline(pipeline, name="fails").assets
    ok = dg.materialize(assets, resources=resources, selection="numbers")
    assert ok.success
    result = dg.materialize(
        assets, resources=resources, selection="breaks_doubled", raise_on_error=False
    )
    assert not result.success
    (failure,) = result.get_step_failure_events()
    error = failure.step_failure_data.error
    while error is not None and not error.message.startswith("pysetl_dagster.errors"):
        error = error.cause  # Dagster wraps the IO manager's error (where lazy work fails)
    assert error is not None, failure.step_failure_data.error
    text = error.message.split(": ", 1)[1]
    assert text.startswith("Factory BreaksDoubled (asset breaks_doubled)"), text
    assert "\nStage: 1\n" in text
    assert "value 2 is not allowed" in text
    assert "Inputs: numbers (version " in text
    assert "Spark job " in text and ", stage " in text, text
    # Spark's message comes before the folded JVM stack trace.
    assert text.index("value 2 is not allowed") < text.index("--- JVM stack trace ---")
    _assert_thread_clean(spark)


def test_factory_logs_land_in_the_run_log_with_asset_and_factory(
    spark: SparkSession, resources: dict[str, Any]
) -> None:
    import json
    import logging

    class Chatty(Numbers):
        def process(self) -> Self:
            self.log_info("pysetl HasLogger says hello")  # PySetl logs via the root logger
            logging.getLogger("my.factory").warning("own logger warns")
            return super().process()

    assets = pysetl_pipeline(Pipeline().add_stage(Stage().add_factory(Chatty())), name="l").assets
    for log_format in ("text", "json"):
        instance = dg.DagsterInstance.ephemeral()
        run_resources = {
            **resources,
            "pyspark": PySparkSessionResource(stop_at_exit=False, log_format=log_format),
        }
        # forced: the second format's run would otherwise reuse the first one's output
        result = dg.materialize(
            assets, resources=run_resources, instance=instance, tags={FORCE_TAG: "all"}
        )
        assert result.success
        entries = [e for e in instance.all_logs(result.run_id) if e.user_message and e.step_key]
        mine = [e for e in entries if "hello" in e.user_message or "warns" in e.user_message]
        assert len(mine) == 2, [e.user_message for e in entries]
        assert {e.step_key for e in mine} == {"chatty"}
        assert {e.level for e in mine} == {logging.INFO, logging.WARNING}
        for entry in mine:
            if log_format == "json":
                record = json.loads(entry.user_message)
                assert record["asset"] == "chatty" and record["factory"] == "Chatty"
                assert record["run"] == result.run_id
            else:
                assert entry.user_message.startswith(
                    f"[run={result.run_id} asset=chatty factory=Chatty] "
                )
    assert not any(isinstance(h, DagsterRunLogHandler) for h in logging.getLogger().handlers)


def test_run_metrics_parse_as_prometheus_text(
    spark: SparkSession, resources: dict[str, Any]
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from pysetl_dagster.spark.prometheus import run_metrics_text

    instance = dg.DagsterInstance.ephemeral()
    assets = pysetl_pipeline(build_numbers_pipeline(), name="prom").assets
    result = dg.materialize(
        assets, resources=resources, run_config=numbers_config(7), instance=instance
    )
    assert result.success
    families = {f.name: f for f in text_string_to_metric_families(
        run_metrics_text(instance, result.run_id))}  # fmt: skip
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    job = (("dagster_job", "__ephemeral_asset_job__"),)
    assert samples[("pysetl_run_success", job)] == 1
    assert samples[("pysetl_run_duration_seconds", job)] > 0
    rows = {dict(k[1])["asset"]: v for k, v in samples.items() if k[0] == "pysetl_asset_rows"}
    assert rows == {"numbers": 7, "doubled": 7, "total": 1}
    phases = {dict(k[1])["phase"] for k in samples if k[0] == "pysetl_asset_phase_seconds"}
    assert {"read", "process", "store"} <= phases
    assert any(
        k[0] == "pysetl_asset_spark" and dict(k[1])["metric"] == "tasks" and v >= 1
        for k, v in samples.items()
    )
