"""Spark Connect sessions: one per run, what the client can report, and a lost server.

A Connect client has no JVM: no SparkContext, status store, UI or Hadoop FileSystem. What the
classic path reads there comes here from what Connect itself returns (observed metrics, the
plan metrics of `DataFrame.executionInfo`), and what it cannot is said in the
materialization's metadata (`CONNECT_UNAVAILABLE`), never a failed run. A server that stops
answering, or restarts under a run, is recognised (`connect_server_lost`) so the run fails
saying so and how to restart it (`server_unreachable_message`).
"""

from __future__ import annotations

import os
from contextlib import suppress
from typing import Any

from pyspark.sql import SparkSession

from pysetl_dagster.errors import PySetlSparkError


def is_connect_session(spark: Any) -> bool:
    """Whether `spark` is a Spark Connect client session (no JVM behind it)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def connect_session(url: str, conf: dict[str, Any], retry_seconds: float) -> Any:
    """A new Connect session of its own on the server at `url`, active on this thread.

    Raises:
        PySetlSparkError: the server does not answer (names the URL and how to start one).
    """
    # pyspark's own builder: besides the session it switches the process to Connect mode
    # (`SPARK_CONNECT_MODE_ENABLED`), so `SparkSession.getActiveSession()` and
    # `pyspark.sql.functions` in the Factories resolve to Connect, never start a local JVM
    session: Any = SparkSession.builder.remote(url).create()
    # and the Factories' `SparkSession.builder.getOrCreate()` (PySpark asks for this URL when
    # no session is active on the thread): the run process talks to this one server
    os.environ.setdefault("SPARK_REMOTE", url)
    _bound_retries(session, retry_seconds)
    make_active(session)
    try:
        # runtime SQL confs only (a Connect server ignores static ones: spark.master, ...);
        # silent: a conf the server refuses is skipped, not an error
        settable: dict[str, str | int | bool] = {
            k: str(v) for k, v in conf.items() if not _static_conf(k)
        }
        if settable:
            session.conf._set_all(configs=settable, silent=True)
        else:
            session.version  # noqa: B018 - one round trip: fail here if nobody answers
    except Exception as exc:
        release_connect_session(session)
        raise PySetlSparkError(server_unreachable_message(url, exc)) from exc
    return session


_STATIC_PREFIXES = ("spark.app.", "spark.master", "spark.driver.", "spark.executor.", "spark.ui.")


def _static_conf(key: str) -> bool:
    return key.startswith(_STATIC_PREFIXES) or key == "spark.remote"


def server_unreachable_message(url: str, exc: BaseException | None = None) -> str:
    """Say that the Connect server is gone and how to bring it back."""
    cause = f" ({str(exc).strip().splitlines()[0][:200]})" if exc is not None and str(exc) else ""
    return (
        f"The Spark Connect server at {url} is not answering, or was restarted during the run "
        f"(it no longer knows the run's session){cause}. Start it again (scripts/dev "
        "starts one; or `python -m pysetl_dagster.spark.connect_server --log-dir <folder>`, "
        "or Spark's sbin/start-connect-server.sh) and run again: earlier stored versions stay "
        "current."
    )


def make_active(session: Any) -> None:
    """Make a Connect session the active one of this thread (PySpark only sets it once)."""
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    if getattr(ConnectSession._active_session, "session", None) is not session:
        ConnectSession._active_session.session = session


def release_connect_session(session: Any) -> None:
    """Release a Connect session on the server (its temp views, cache, tags) and close it."""
    with suppress(Exception):
        session.stop()


def _bound_retries(session: Any, seconds: float) -> None:
    """Retry an unreachable server for about `seconds` (backoff 0.25 s doubling to 2 s)."""
    from pyspark.sql.connect.client.retries import DefaultPolicy

    waits, wait, total = 0, 0.25, 0.0
    while total + wait <= seconds:
        total += wait
        waits += 1
        wait = min(wait * 2, 2.0)
    client = session.client
    policies = [
        DefaultPolicy(
            max_retries=max(waits, 1),
            backoff_multiplier=2.0,
            initial_backoff=250,
            max_backoff=2000,
            jitter=100,
        )
        if isinstance(policy, DefaultPolicy)
        else policy
        for policy in client.get_retry_policies()
    ]
    client.set_retry_policies(policies)


# -- Spark Connect: what the client is told ----------------------------------------------------

CONNECT_UNAVAILABLE = (
    "Spark Connect: spark/jobs, spark/stages, spark/tasks, spark/executor_run_time_ms, "
    "spark/output_bytes, spark/ui and spark/executor_peak_memory_mb are not reported (the "
    "server's status store and UI are not the client's); spark/input_* and shuffle figures "
    "come from the plan metrics of the queries that return rows; spark/output_records is "
    "observed during the write; pysetl/driver_peak_rss_mb is the run process alone (the JVM "
    "is the server's)."
)
"""What a materialization on a Connect session lacks, said in its metadata
(`MetadataKey.SPARK_UNAVAILABLE`) rather than failing the run."""


def connect_plan_metrics(execution_info: Any) -> dict[str, int]:
    """Totals from a Connect `ExecutionInfo` (`DataFrame.executionInfo` after an action): the
    plan-node metrics the server returns with a query's results (none for a write command).

    Scans give input records and bytes, exchanges the shuffle bytes; peak memory is the
    largest node's, spill the sum.
    """
    collected = getattr(execution_info, "metrics", None)
    nodes = getattr(collected, "_metrics", None) or []
    totals: dict[str, int] = {}

    def add(key: str, value: Any, peak: bool = False) -> None:
        number = int(value or 0)
        totals[key] = max(totals.get(key, 0), number) if peak else totals.get(key, 0) + number

    for node in nodes:
        values = {m.name: m.value for m in node.metrics}
        if str(node.name).startswith("Scan"):
            add("spark/input_records", values.get("numOutputRows"))
            add("spark/input_bytes", values.get("filesSize"))
        if str(node.name).startswith("Exchange"):
            add("spark/shuffle_write_bytes", values.get("shuffleBytesWritten"))
            add(
                "spark/shuffle_read_bytes",
                int(values.get("localBytesRead") or 0) + int(values.get("remoteBytesRead") or 0),
            )
        if "peakMemory" in values:
            add("spark/peak_execution_memory_bytes", values["peakMemory"], peak=True)
        if "spillSize" in values:
            add("spark/memory_spilled_bytes", values["spillSize"])
    return totals


def connect_url(spark: Any) -> str | None:
    """The `sc://host:port` a Connect session talks to (None for a classic session)."""
    if not is_connect_session(spark):  # a classic session's `client` raises, not None
        return None
    try:
        url = spark.client._builder.url
    except Exception:
        return None
    if url is None:
        return None
    return f"sc://{url.hostname}:{url.port}" if url.port else f"sc://{url.hostname}"


_UNREACHABLE = (
    "RETRIES_EXCEEDED",
    "StatusCode.UNAVAILABLE",
    "failed to connect to all addresses",
    "Connection refused",
    "Socket closed",
    "INVALID_HANDLE.SESSION_CHANGED",
    "INVALID_HANDLE.SESSION_NOT_FOUND",
)


def connect_server_lost(exc: BaseException) -> bool:
    """Whether an exception (or one it was raised from) says the Connect server is gone: not
    answering, or restarted meanwhile (it no longer knows the run's session)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        code = getattr(current, "code", None)
        if callable(code):
            with suppress(Exception):
                if str(code()) == "StatusCode.UNAVAILABLE":
                    return True
        text = f"{type(current).__name__}: {current}"
        if any(marker in text for marker in _UNREACHABLE):
            return True
        current = current.__cause__ or current.__context__
    return False


def lost_server_note(spark: Any, exc: BaseException) -> str | None:
    """The line an error message gets when `exc` means the session's Connect server is gone
    (None otherwise, and for classic sessions)."""
    url = connect_url(spark) if spark is not None else None
    if url is None or not connect_server_lost(exc):
        return None
    return server_unreachable_message(url)
