"""Tie Spark's work to Dagster runs: every Spark job labelled with its run, asset and step.

PySetl Factories are lazy: `read()`/`process()` mostly build plans, and the Spark jobs run
later, when the IO manager writes the output (and reads upstream versions inside that write).
So labels are set around *every* place that can start a job - the Factory's methods and the
IO manager's reads and writes - not just around the Factory.

A scope sets, for the current thread:
  - Spark job tags: the run (`dagster-run-<id>`), the asset (`dagster-asset-<key>`) and the
    step (`dagster-step-<id>-<key>`, what cancellation and metrics use), through
    `SparkSession.addTag` (works for classic and Spark Connect) and, on a classic session,
    `SparkContext.addJobTag` too (so RDD jobs carry them and the status tracker finds them);
  - a job group and a readable job description (classic only), e.g.
    `clean_orders · CleanOrders.process() · run 1a2b3c4d`;
  - the FAIR scheduler pool named after the asset (`spark.scheduler.pool`, classic only), so
    Factories running at the same time on one session share its cores fairly (the session
    resource turns on `spark.scheduler.mode=FAIR`; under FIFO the pool is only a label);
and clears them on exit, tags it added and the job group/description alike (PySetl's
`Stage.run_factory` sets a job group and never clears it; `no_leaked_spark_labels` guards code
that calls PySetl natively).

When the scope ends with an exception (a Factory raised, or the run was terminated and
Dagster interrupted the step), the step's Spark jobs are cancelled, from another thread:
the interrupted thread's py4j connection may still be waiting for the cancelled call.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import SparkSession

RUN_TAG_PREFIX = "dagster-run-"
ASSET_TAG_PREFIX = "dagster-asset-"
STEP_TAG_PREFIX = "dagster-step-"

POOL_PROPERTY = "spark.scheduler.pool"

_LOCAL_PROPERTIES = (
    "spark.jobGroup.id",
    "spark.job.description",
    "spark.job.interruptOnCancel",
    POOL_PROPERTY,
)


def _clean(tag: str) -> str:
    """Spark forbids commas in tags (and they must not be empty)."""
    return tag.replace(",", "_")


def run_tag(run_id: str) -> str:
    return _clean(f"{RUN_TAG_PREFIX}{run_id}")


def asset_tag(asset: str) -> str:
    return _clean(f"{ASSET_TAG_PREFIX}{asset}")


def step_tag(run_id: str, asset: str) -> str:
    """One tag for the jobs of one asset in one run: what cancellation and metrics select."""
    return _clean(f"{STEP_TAG_PREFIX}{run_id}-{asset}")


def spark_tags(run_id: str, asset: str) -> list[str]:
    """Spark job tags for one asset's work in one run."""
    return [run_tag(run_id), asset_tag(asset), step_tag(run_id, asset)]


def spark_context(spark: SparkSession | None) -> Any:
    """The session's SparkContext, or None (no session, or Spark Connect, which has none)."""
    if spark is None:
        return None
    try:
        return spark.sparkContext
    except Exception:
        return None


def active_session() -> SparkSession | None:
    """The session this process already runs, never a new one (no JVM start for labels)."""
    return SparkSession.getActiveSession() or SparkSession._instantiatedSession


@dataclass
class _Saved:
    properties: dict[str, str | None] = field(default_factory=dict)
    added_sc_tags: list[str] = field(default_factory=list)
    added_session_tags: list[str] = field(default_factory=list)


def _set_description(sc: Any, description: str | None) -> None:
    if sc is not None:
        sc.setLocalProperty("spark.job.description", description)


@contextmanager
def spark_job_scope(
    spark: SparkSession | None,
    group_id: str | None,
    description: str | None,
    tags: list[str],
    *,
    cancel_on_error: bool = True,
    pool: str | None = None,
) -> Iterator[SparkJobScope]:
    """Label the Spark jobs this thread starts inside; clear the thread's labels afterwards.

    Every label is the thread's own (Spark keeps local properties and job tags per JVM thread,
    PySpark pins one JVM thread to each Python thread, and Spark Connect keeps tags per client
    thread), so Factories running on threads of one session never see each other's labels.

    On an exception (including Dagster's interrupt when a run is terminated) the jobs carrying
    the scope's last tag (the step tag from `spark_tags`) are cancelled before it propagates.
    """
    scope = SparkJobScope(spark, tags)
    if spark is None:
        yield scope
        return
    sc = spark_context(spark)
    saved = _Saved()
    if sc is not None:
        saved.properties = {p: sc.getLocalProperty(p) for p in _LOCAL_PROPERTIES}
        if group_id is not None:
            sc.setJobGroup(group_id, description or "", interruptOnCancel=True)
        elif description is not None:
            _set_description(sc, description)
        if pool is not None:
            sc.setLocalProperty(POOL_PROPERTY, pool)
        present = set(sc.getJobTags())
        for tag in tags:
            if tag not in present:
                sc.addJobTag(tag)
                saved.added_sc_tags.append(tag)
    try:
        present_session = spark.getTags()
        for tag in tags:
            if tag not in present_session:
                spark.addTag(tag)
                saved.added_session_tags.append(tag)
    except Exception:  # a session without operation tags: the SparkContext tags still apply
        pass
    try:
        yield scope
    except BaseException:
        if cancel_on_error and tags:
            cancel_tag(spark, tags[-1])
        raise
    finally:
        for tag in saved.added_session_tags:
            with suppress(Exception):
                spark.removeTag(tag)
        if sc is not None:
            for tag in saved.added_sc_tags:
                sc.removeJobTag(tag)
            # SparkContext has no clearJobGroup(); unsetting the local properties is what it
            # would do. Cleared, not restored: what was there before is most likely a group
            # PySetl's Stage left behind (it never clears its own), which must not leak on.
            for prop in saved.properties:
                sc.setLocalProperty(prop, None)


class SparkJobScope:
    """Handle of an open `spark_job_scope`: change the job description per phase."""

    def __init__(self, spark: SparkSession | None, tags: list[str]) -> None:
        self.spark = spark
        self.tags = tags

    def describe(self, description: str) -> None:
        """The description of the jobs started from now on (shown in the Spark UI)."""
        _set_description(spark_context(self.spark), description)


def pool_name(asset: str) -> str:
    """The FAIR scheduler pool of an asset's Spark jobs: the asset key (pools are created on
    first use with Spark's defaults: weight 1, FIFO inside the pool)."""
    return asset


def describe(asset: str, what: str, run_id: str) -> str:
    return f"{asset} · {what} · run {run_id[:8]}"


@contextmanager
def asset_scope(
    spark: SparkSession | None, run_id: str, asset: str, what: str
) -> Iterator[SparkJobScope]:
    """The scope of one asset's work in one run (`what`: e.g. `CleanOrders.process()`), in the
    FAIR scheduler pool of the asset."""
    with spark_job_scope(
        spark,
        f"{asset}:{run_id}",
        describe(asset, what, run_id),
        spark_tags(run_id, asset),
        pool=pool_name(asset),
    ) as scope:
        yield scope


def _in_thread(work: Any, timeout: float = 30.0) -> None:
    """Run a Spark call on a fresh thread (own py4j connection) and wait for it."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            work()
        except BaseException as exc:  # reported by the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=target, name="pysetl-dagster-cancel", daemon=True)
    thread.start()
    thread.join(timeout)


def cancel_tag(spark: SparkSession | None, tag: str) -> None:
    """Cancel every running Spark job with `tag`: `interruptTag` (classic and Connect), plus
    `cancelJobsWithTag` for jobs tagged on the SparkContext (classic)."""
    if spark is None:
        return

    def work() -> None:
        with suppress(Exception):
            spark.interruptTag(tag)
        sc = spark_context(spark)
        if sc is not None:
            sc.cancelJobsWithTag(tag)

    _in_thread(work)


def cancel_run_jobs(spark: SparkSession | None, run_id: str) -> None:
    """Cancel every Spark job a Dagster run started (e.g. when the run is terminated)."""
    cancel_tag(spark, run_tag(run_id))


def spark_jobs_submitted(spark: SparkSession | None) -> int:
    """How many Spark jobs the application has submitted so far (classic sessions): the
    difference across a run is the run's Spark work, counted by Spark itself."""
    sc = spark_context(spark)
    if sc is None:
        return 0
    return int(sc._jsc.sc().dagScheduler().nextJobId())


def job_ids_with_tag(spark: SparkSession | None, tag: str) -> list[int]:
    """Ids of the retained Spark jobs carrying `tag` (classic sessions; [] otherwise)."""
    sc = spark_context(spark)
    if sc is None:
        return []
    return sorted(int(i) for i in sc._jsc.sc().statusTracker().getJobIdsForTag(tag))


def active_job_ids_with_tag(spark: SparkSession | None, tag: str) -> list[int]:
    sc = spark_context(spark)
    if sc is None:
        return []
    active = set(sc.statusTracker().getActiveJobsIds())
    return [i for i in job_ids_with_tag(spark, tag) if i in active]


@contextmanager
def no_leaked_spark_labels(spark: SparkSession | None) -> Iterator[None]:
    """Run PySetl natively (`Pipeline.run()`, `Stage.run()`) without its job group leaking:
    `Stage.run_factory` sets one per Factory and never clears it, so every later job of the
    thread would carry the last Factory's group. Restores the thread's labels afterwards."""
    with spark_job_scope(spark, None, None, [], cancel_on_error=False):
        yield
