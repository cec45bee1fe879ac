"""Memory of a materialization, and how often Spark scanned a stored input.

- Driver peak RSS: the Python process *and* the driver JVM it started (PySpark runs the JVM as
  a child process, and in `local[*]` mode the executors live in it too). Read from Linux's
  `/proc/<pid>/status` (`VmHWM`), reset at the start of each materialization through
  `/proc/<pid>/clear_refs`, so the figure is the peak *during* that materialization. No new
  dependency; on other systems only the Python process's lifetime peak is known. The peak is
  the process's: when Factories run at the same time (threads of one run), it is reset only by
  the first of them and the figure covers them all, marked `pysetl/driver_peak_shared`
  rather than one Factory's peak wiping another's.
- Executor peak memory: what Spark itself reports (`peakMemoryMetrics` of each executor in its
  status store, the REST API's figure): the largest JVM heap + off-heap use of any executor
  since the application started. Spark fills it with executor heartbeats (the first lands
  10-20 s after the session starts); until then, in local mode, where the driver JVM is the
  only executor, the JVM's own memory pools give the figure (the sum of each pool's peak, an
  upper bound of Spark's sampled one), so every materialization carries the same keys. On a
  cluster it is absent until the first heartbeat.
- `count_input_scans`: the Spark SQL scans of files under a path made by the jobs with a tag,
  from Spark's SQL status store (what the SQL tab of the UI shows): used to prove a Factory's
  input is read once per materialization.

Nothing here collects data: everything comes from process and Spark status counters.
"""

from __future__ import annotations

import re
import resource
import sys
import threading
import weakref
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster import MetadataValue
from pyspark.sql import SparkSession

from pysetl_dagster.metadata import MetadataKey
from pysetl_dagster.spark.labels import job_ids_with_tag, spark_context

_HWM = re.compile(r"^VmHWM:\s+(\d+)\s+kB", re.MULTILINE)
_RSS = re.compile(r"^VmRSS:\s+(\d+)\s+kB", re.MULTILINE)


def _proc_kb(pid: int, pattern: re.Pattern[str]) -> int | None:
    try:
        match = pattern.search(Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return None
    return int(match.group(1)) if match else None


def driver_jvm_pid(spark: SparkSession | None) -> int | None:
    """The pid of the driver JVM this process talks to (classic sessions), if it is local."""
    sc = spark_context(spark)
    if sc is None:
        return None
    try:
        pid = int(sc._jvm.java.lang.ProcessHandle.current().pid())
    except Exception:
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


def _reset_peak(pid: int) -> bool:
    """Reset a process's peak RSS to its current RSS (Linux: `5` into clear_refs)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


_MEASURING_LOCK = threading.Lock()
_measuring: weakref.WeakSet[DriverMemory] = weakref.WeakSet()
"""The measurements under way in this process (Factories running at once); an entry leaves
when its figure is read or the step that held it is gone."""


@dataclass(eq=False)
class DriverMemory:
    """The driver's processes (Python, and its JVM when local), measured from `start()`."""

    pids: list[int] = field(default_factory=list)
    shared: bool = False
    """Another Factory ran in this process meanwhile: the peak is theirs together."""

    @classmethod
    def start(cls, spark: SparkSession | None) -> DriverMemory:
        import os

        pids = [os.getpid()]
        jvm = driver_jvm_pid(spark)
        if jvm is not None and jvm not in pids:
            pids.append(jvm)
        measurement = cls(pids)
        with _MEASURING_LOCK:
            if _measuring:  # resetting would wipe the running Factories' peaks
                measurement.shared = True
                for other in _measuring:
                    other.shared = True
            else:
                for pid in pids:
                    _reset_peak(pid)
            _measuring.add(measurement)
        return measurement

    def peak_mb(self) -> float | None:
        """Sum of the processes' peak RSS since `start()` (each reaches its peak at its own
        moment, so this bounds the driver's footprint from above); ends the measurement."""
        with _MEASURING_LOCK:
            _measuring.discard(self)
        peaks = [_proc_kb(pid, _HWM) for pid in self.pids]
        if any(p is None for p in peaks):
            if sys.platform.startswith("linux"):
                return None
            # not Linux: the Python process's lifetime peak (bytes on macOS, kB elsewhere)
            raw = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            return raw / 2**20 if sys.platform == "darwin" else raw / 1024
        return sum(p for p in peaks if p is not None) / 1024


def executor_peak_memory_mb(spark: SparkSession | None) -> float | None:
    """The largest JVM heap + off-heap peak of any executor (the driver in local mode), as
    Spark's status store reports it; before Spark's first heartbeat, the local JVM's own pool
    peaks; None on a cluster that has not reported yet."""
    reported = spark_reported_peak_mb(spark)
    return reported if reported is not None else local_jvm_peak_mb(spark)


def spark_reported_peak_mb(spark: SparkSession | None) -> float | None:
    """`peakMemoryMetrics` of each executor in Spark's status store (filled by heartbeats)."""
    sc = spark_context(spark)
    if sc is None:
        return None
    try:
        executors = sc._jsc.sc().statusStore().executorList(False)
        best = 0
        for i in range(executors.size()):
            peak = executors.apply(i).peakMemoryMetrics()
            if not peak.isDefined():
                continue
            metrics = peak.get()
            used = int(metrics.getMetricValue("JVMHeapMemory")) + int(
                metrics.getMetricValue("JVMOffHeapMemory")
            )
            best = max(best, used)
    except Exception:
        return None
    return best / 2**20 if best > 0 else None


def local_jvm_peak_mb(spark: SparkSession | None) -> float | None:
    """In local mode the driver JVM is the executor: the sum of its memory pools' peaks (heap
    and non-heap, since the JVM started), read through JMX, no heartbeat needed."""
    sc = spark_context(spark)
    if sc is None:
        return None
    try:
        if not str(sc.master).startswith("local"):
            return None
        pools = sc._jvm.java.lang.management.ManagementFactory.getMemoryPoolMXBeans()
        total = sum(int(pools.get(i).getPeakUsage().getUsed()) for i in range(pools.size()))
    except Exception:
        return None
    return total / 2**20 if total > 0 else None


def memory_metadata(spark: SparkSession | None, driver: DriverMemory) -> dict[str, Any]:
    """`pysetl/driver_peak_rss_mb` and, when Spark measured it, `spark/executor_peak_memory_mb`."""
    metadata: dict[str, Any] = {}
    peak = driver.peak_mb()
    if peak is not None:
        metadata[MetadataKey.DRIVER_PEAK_RSS_MB] = MetadataValue.float(round(peak, 1))
        if driver.shared:
            metadata[MetadataKey.DRIVER_PEAK_SHARED] = MetadataValue.bool(True)
    executors = executor_peak_memory_mb(spark)
    if executors is not None:
        metadata["spark/executor_peak_memory_mb"] = MetadataValue.float(round(executors, 1))
    return metadata


def _as_int(value: Any) -> int:
    digits = re.sub(r"[^0-9]", "", str(value or ""))
    return int(digits) if digits else 0


METADATA_LENGTH_CONF = "spark.sql.maxMetadataStringLength"
"""Spark shortens plan metadata (a scan's location) to this many characters (default 100):
counting scans by path needs it raised on the session (a runtime SQL conf)."""
_TRUNCATED = re.compile(r"Location: [^\n]*\.\.\.")


def count_input_scans(spark: SparkSession | None, path_substring: str, tag: str) -> int:
    """How many file scans over a path containing `path_substring` the Spark jobs carrying
    `tag` ran: the scan nodes of their SQL executions that read at least one file.

    A scan answered from a persisted (cached) DataFrame reads no file and is not counted;
    listing a folder or inferring a schema from footers is not a scan either.
    Spark shortens long locations in its plans: set `spark.sql.maxMetadataStringLength` (e.g.
    10000) on the session before the run; a shortened location raises rather than miscounts.
    Classic sessions only (Spark Connect has no status store here): 0 otherwise.
    """
    sc = spark_context(spark)
    if sc is None or spark is None:
        return 0
    jobs = set(job_ids_with_tag(spark, tag))
    if not jobs:
        return 0
    with suppress(Exception):
        sc._jsc.sc().listenerBus().waitUntilEmpty(5000)
    store = spark._jsparkSession.sharedState().statusStore()
    executions = store.executionsList()
    scans = 0
    for i in range(executions.size()):
        execution = executions.apply(i)
        ids = {int(j) for j in str(execution.jobs().keys().mkString(",")).split(",") if j}
        if not ids & jobs:
            continue
        execution_id = execution.executionId()
        values = store.executionMetrics(execution_id)
        nodes = store.planGraph(execution_id).allNodes()
        for k in range(nodes.size()):
            node = nodes.apply(k)
            desc = str(node.desc())
            if not str(node.name()).startswith("Scan"):
                continue
            if path_substring not in desc:
                if _TRUNCATED.search(desc):
                    raise ValueError(
                        f"Spark shortened a scanned location in its plan ({desc[:160]}...), so "
                        f"scans of {path_substring!r} cannot be counted. Set "
                        f"{METADATA_LENGTH_CONF}=10000 on the session before the run."
                    )
                continue
            metrics = node.metrics()
            for m in range(metrics.size()):
                metric = metrics.apply(m)
                if metric.name() != "number of files read":
                    continue
                value = values.get(metric.accumulatorId())
                if value.isDefined() and _as_int(value.get()) > 0:
                    scans += 1
    return scans


# -- persisting a Factory's output across the writes of one materialization ---------------------

OWN_SINK_STORAGE_LEVEL = "MEMORY_AND_DISK"


def persist_output(output: Any) -> Any:
    """Persist a Spark DataFrame (MEMORY_AND_DISK) so the writes that follow compute its
    lineage once; anything else is returned as is (None: nothing to release)."""
    from pyspark import StorageLevel
    from pyspark.sql import DataFrame

    if not isinstance(output, DataFrame):
        return None
    return output.persist(getattr(StorageLevel, OWN_SINK_STORAGE_LEVEL))


def release(persisted: Any) -> None:
    """Unpersist what `persist_output` persisted (non-blocking; never raises)."""
    if persisted is not None:
        with suppress(Exception):
            persisted.unpersist(blocking=False)
