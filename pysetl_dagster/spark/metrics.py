"""What Spark did for a step, from Spark itself: the jobs and stages carrying a tag, their
records, bytes, shuffle, run time, memory and spill (the status store), the plan, the UI
link, and a failed job's stage, so errors and metadata name the work Spark did.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from pyspark.sql import SparkSession

from pysetl_dagster.spark.labels import job_ids_with_tag, spark_context

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
