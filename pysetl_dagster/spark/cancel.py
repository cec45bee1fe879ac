"""Cancel a terminated run's Spark jobs: a watcher per run polls the run's status and
cancels the jobs carrying the run's tag as soon as Dagster marks it CANCELING (a blocked py4j
call would otherwise only see the interrupt when it returns). Watchers are per-run state,
stopped at the Spark resource's teardown.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from pyspark.sql import SparkSession

from pysetl_dagster.spark.labels import active_job_ids_with_tag, cancel_run_jobs, run_tag


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
"""The watchers of this process's runs that have not ended: each is removed at its run's end
(`stop_watching`, called by the Spark resource's teardown), so the map never outgrows the
runs in flight."""
_WATCHERS_LOCK = threading.Lock()


def can_watch(instance: Any) -> bool:
    """Whether a thread may poll the instance's run storage while the run writes to it.

    Not for in-memory run storage (`DagsterInstance.ephemeral()`, which `materialize()` uses):
    it is SQLite with a shared cache, where a read on another thread locks the `runs` table
    and the run's own status update fails at once with "database table is locked" (no busy
    wait). Nothing outside the process can terminate such a run anyway."""
    from dagster._core.storage.runs.in_memory import InMemoryRunStorage

    return instance is not None and not isinstance(instance.run_storage, InMemoryRunStorage)


def watch_run(instance: Any, run_id: str, spark: SparkSession | None) -> CancelWatcher | None:
    """Start (once per run and process) the watcher that cancels the run's Spark jobs when the
    run is terminated; None when the run cannot be watched (no session, an ephemeral
    instance). It stops by itself when the run finishes, or at `stop_watching`."""
    if spark is None or not can_watch(instance):
        return None
    with _WATCHERS_LOCK:
        watcher = _WATCHERS.get(run_id)
        if watcher is None or not watcher._thread.is_alive():
            watcher = _WATCHERS[run_id] = CancelWatcher(instance, run_id, spark).start()
        return watcher


def stop_watching(run_id: str) -> None:
    """Stop and forget the run's watcher (the run ended)."""
    with _WATCHERS_LOCK:
        watcher = _WATCHERS.pop(run_id, None)
    if watcher is not None:
        watcher.stop()


def watched_runs() -> list[str]:
    """The runs of this process being watched now."""
    with _WATCHERS_LOCK:
        return sorted(_WATCHERS)
