"""Tie Spark's work to Dagster runs: labels, cancellation and metrics of every Spark job.

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
and clears them on exit, tags it added and the job group/description alike (PySetl's
`Stage.run_factory` sets a job group and never clears it; `no_leaked_spark_labels` guards code
that calls PySetl natively).

When the scope ends with an exception (a Factory raised, or the run was terminated and
Dagster interrupted the step), the step's Spark jobs are cancelled, from another thread:
the interrupted thread's py4j connection may still be waiting for the cancelled call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import SparkSession

RUN_TAG_PREFIX = "dagster-run-"
ASSET_TAG_PREFIX = "dagster-asset-"
STEP_TAG_PREFIX = "dagster-step-"

_LOCAL_PROPERTIES = ("spark.jobGroup.id", "spark.job.description", "spark.job.interruptOnCancel")


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
        sc.setLocalProperty("spark.job.description", description)  # type: ignore[arg-type]


@contextmanager
def spark_job_scope(
    spark: SparkSession | None,
    group_id: str | None,
    description: str | None,
    tags: list[str],
    *,
    cancel_on_error: bool = True,
) -> Iterator[SparkJobScope]:
    """Label the Spark jobs this thread starts inside; clear the thread's labels afterwards.

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
                sc.setLocalProperty(prop, None)  # type: ignore[arg-type]


class SparkJobScope:
    """Handle of an open `spark_job_scope`: change the job description per phase."""

    def __init__(self, spark: SparkSession | None, tags: list[str]) -> None:
        self.spark = spark
        self.tags = tags

    def describe(self, description: str) -> None:
        """The description of the jobs started from now on (shown in the Spark UI)."""
        _set_description(spark_context(self.spark), description)


def describe(asset: str, what: str, run_id: str) -> str:
    return f"{asset} · {what} · run {run_id[:8]}"


@contextmanager
def asset_scope(
    spark: SparkSession | None, run_id: str, asset: str, what: str
) -> Iterator[SparkJobScope]:
    """The scope of one asset's work in one run (`what`: e.g. `CleanOrders.process()`)."""
    with spark_job_scope(
        spark, f"{asset}:{run_id}", describe(asset, what, run_id), spark_tags(run_id, asset)
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


class CancelWatcher:
    """Cancels a run's Spark jobs as soon as its Dagster run is marked CANCELING.

    Dagster delivers a termination to the run worker as SIGINT, which Python only acts on
    between bytecodes; a thread blocked in a long py4j call (a Spark action) sees it only when
    the call returns. The watcher polls the run's status and cancels the run's Spark jobs by
    tag, so the blocked call returns at once and the interrupt can end the step.
    """

    def __init__(
        self, instance: Any, run_id: str, spark: SparkSession | None, interval: float = 0.5
    ) -> None:
        self.instance = instance
        self.run_id = run_id
        self.spark = spark
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._watch, name=f"pysetl-dagster-watch-{run_id[:8]}", daemon=True
        )

    def start(self) -> CancelWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        from dagster import DagsterRunStatus

        while not self._stop.wait(self.interval):
            try:
                run = self.instance.get_run_by_id(self.run_id)
            except Exception:
                continue
            if run is None:
                return
            if run.status in (DagsterRunStatus.CANCELING, DagsterRunStatus.CANCELED):
                deadline = time.monotonic() + 30
                while not self._stop.is_set() and time.monotonic() < deadline:
                    cancel_run_jobs(self.spark, self.run_id)
                    if not active_job_ids_with_tag(self.spark, run_tag(self.run_id)):
                        break
                    self._stop.wait(0.2)
                return
            if run.is_finished:
                return


_WATCHERS: dict[str, CancelWatcher] = {}
_WATCHERS_LOCK = threading.Lock()


def can_watch(instance: Any) -> bool:
    """Whether a thread may poll the instance's run storage while the run writes to it.

    Not for in-memory run storage (`DagsterInstance.ephemeral()`, which `materialize()` uses):
    it is SQLite with a shared cache, where a read on another thread locks the `runs` table
    and the run's own status update fails at once with "database table is locked" (no busy
    wait). Nothing outside the process can terminate such a run anyway."""
    from dagster._core.storage.runs.in_memory import InMemoryRunStorage

    return instance is not None and not isinstance(instance.run_storage, InMemoryRunStorage)


def watch_run(instance: Any, run_id: str, spark: SparkSession | None) -> None:
    """Start (once per run and process) the watcher that cancels the run's Spark jobs when the
    run is terminated. It stops by itself when the run finishes."""
    if spark is None or not can_watch(instance):
        return
    with _WATCHERS_LOCK:
        watcher = _WATCHERS.get(run_id)
        if watcher is not None and watcher._thread.is_alive():
            return
        _WATCHERS[run_id] = CancelWatcher(instance, run_id, spark).start()


# -- metrics from Spark ----------------------------------------------------------------------

_STAGE_METRICS = {
    "spark/input_records": "inputRecords",
    "spark/input_bytes": "inputBytes",
    "spark/output_records": "outputRecords",
    "spark/output_bytes": "outputBytes",
    "spark/shuffle_read_bytes": "shuffleReadBytes",
    "spark/shuffle_write_bytes": "shuffleWriteBytes",
    "spark/executor_run_time_ms": "executorRunTime",
    "spark/peak_execution_memory_bytes": "peakExecutionMemory",
    "spark/memory_spilled_bytes": "memoryBytesSpilled",
    "spark/disk_spilled_bytes": "diskBytesSpilled",
}


@dataclass
class SparkStageInfo:
    stage_id: int
    status: str
    name: str
    failure: str | None


@dataclass
class SparkJobInfo:
    job_id: int
    status: str
    description: str | None
    stages: list[SparkStageInfo]


def _status_store(sc: Any, wait_ms: int = 5000) -> Any:
    """Spark's own status store (what the UI and REST API serve), after the listener bus has
    delivered the events of the jobs that just ran (it is asynchronous)."""
    jsc = sc._jsc.sc()
    with suppress(Exception):
        jsc.listenerBus().waitUntilEmpty(wait_ms)
    return jsc.statusStore()


def _stage_ids(job: Any) -> list[int]:
    ids = job.stageIds().mkString(",")
    return [int(i) for i in ids.split(",") if i]


def spark_jobs(spark: SparkSession | None, tag: str) -> list[SparkJobInfo]:
    """The retained jobs with `tag`, with their stages' status and failure reason."""
    sc = spark_context(spark)
    if sc is None:
        return []
    store = _status_store(sc)
    jobs = []
    for job_id in job_ids_with_tag(spark, tag):
        try:
            job = store.job(job_id)
        except Exception:  # evicted from the store (spark.ui.retainedJobs)
            continue
        stages = []
        for stage_id in _stage_ids(job):
            try:
                data = store.lastStageAttempt(stage_id)
            except Exception:
                continue
            reason = data.failureReason()
            failure = str(reason.get()) if reason.isDefined() else None
            stages.append(SparkStageInfo(stage_id, data.status().toString(), data.name(), failure))
        desc = job.description()
        jobs.append(
            SparkJobInfo(
                job_id,
                job.status().toString(),
                str(desc.get()) if desc.isDefined() else None,
                stages,
            )
        )
    return jobs


def spark_metrics(spark: SparkSession | None, tag: str) -> dict[str, int]:
    """Totals over the jobs with `tag`: jobs, stages and tasks run, records, bytes, shuffle,
    executor time, peak memory (the max over stages) and spill, from Spark's status store."""
    sc = spark_context(spark)
    if sc is None:
        return {}
    store = _status_store(sc)
    totals = dict.fromkeys(["spark/jobs", "spark/stages", "spark/tasks", *_STAGE_METRICS], 0)
    seen: set[int] = set()
    for job_id in job_ids_with_tag(spark, tag):
        try:
            job = store.job(job_id)
        except Exception:
            continue
        totals["spark/jobs"] += 1
        for stage_id in _stage_ids(job):
            if stage_id in seen:
                continue
            seen.add(stage_id)
            try:
                data = store.lastStageAttempt(stage_id)
            except Exception:
                continue
            if data.status().toString() == "SKIPPED":
                continue
            totals["spark/stages"] += 1
            totals["spark/tasks"] += int(data.numCompleteTasks()) + int(data.numFailedTasks())
            for name, getter in _STAGE_METRICS.items():
                value = int(getattr(data, getter)())
                if name == "spark/peak_execution_memory_bytes":
                    totals[name] = max(totals[name], value)
                else:
                    totals[name] += value
    return totals


def spark_plan(df: Any) -> str:
    """The DataFrame's plan as `explain(mode="formatted")` prints it."""
    try:
        jvm = df.sparkSession.sparkContext._jvm
        return str(jvm.PythonSQLUtils.explainString(df._jdf.queryExecution(), "formatted"))
    except Exception:  # Spark Connect: no JVM here; ask the server
        return str(df._explain_string("formatted")) if hasattr(df, "_explain_string") else ""


def spark_ui_url(spark: SparkSession | None) -> str | None:
    """The Spark UI of this session, when it runs one."""
    sc = spark_context(spark)
    url = sc.uiWebUrl if sc is not None else None
    return str(url) if url else None


# -- errors with Spark context ---------------------------------------------------------------


def split_spark_error(exc: BaseException) -> tuple[str, str]:
    """(the Spark error message, the JVM stack trace) of an exception raised through py4j.

    PySpark's errors carry the JVM trace in their text; the message comes first so the run's
    error says what went wrong before where in Spark it happened.
    """
    jvm_trace = getattr(exc, "_stackTrace", None)  # pyspark's CapturedException
    if isinstance(jvm_trace, str) and jvm_trace.strip():
        desc = getattr(exc, "_desc", None) or str(exc)
        return str(desc).strip() or type(exc).__name__, jvm_trace.strip()
    lines = str(exc).splitlines()
    trace_start = next(
        (i for i, line in enumerate(lines) if line.lstrip().startswith(("at ", "JVM stacktrace"))),
        len(lines),
    )
    message = "\n".join(lines[:trace_start]).strip()
    trace = "\n".join(lines[trace_start:]).strip()
    return message or type(exc).__name__, trace


def failed_spark_work(spark: SparkSession | None, tag: str) -> str | None:
    """'Spark job 12 (description), stage 31 (name): reason' for the failed jobs with `tag`."""
    parts = []
    for job in spark_jobs(spark, tag):
        if job.status != "FAILED":
            continue
        failed = [s for s in job.stages if s.status == "FAILED"] or job.stages[-1:]
        for stage in failed:
            reason = (stage.failure or "").strip().splitlines()
            parts.append(
                f"Spark job {job.job_id} ({job.description or 'no description'}), "
                f"stage {stage.stage_id} ({stage.name})" + (f": {reason[0]}" if reason else "")
            )
    return "\n".join(parts) or None


# -- inputs loaded by the step running on this thread ----------------------------------------

_thread = threading.local()


def note_input(step_key: str, asset: str, version: str) -> None:
    """Remember that the step `step_key` loaded `version` of `asset` (for error messages)."""
    if getattr(_thread, "step_key", None) != step_key:
        _thread.step_key = step_key
        _thread.inputs = {}
    _thread.inputs[asset] = version


def loaded_inputs(step_key: str | None = None) -> dict[str, str]:
    """Asset -> storage version loaded by the latest step of this thread (or `step_key`)."""
    if step_key is not None and getattr(_thread, "step_key", None) != step_key:
        return {}
    return dict(getattr(_thread, "inputs", {}))
