"""The Spark session resource: one SparkSession per run process, configured by Dagster.

Lazy like dagster-pyspark's `LazyPySparkResource`, whose session builder it uses (imported
when a session starts, so loading definitions imports neither dagster-pyspark nor
dagster-spark): nothing starts while definitions load; the session starts when a run
initialises its resources, and `getOrCreate` makes every step of an in-process run, and the
IO manager, share it. It is stopped when the process exits, not after each run, so a
long-lived process (tests, notebooks) keeps one JVM.

With `remote` (a Spark Connect URL) the run process starts no JVM: each run gets its *own*
Connect session (`builder.remote(url).create()`), so two runs on one server never see each
other's temp views, tags or cached data; it is the active session of the threads that use it
(where PySetl's Factories find it with `SparkSession.getActiveSession()`) and is released on
the server at the run's end. A server that stops answering fails the call after
`connect_retry_seconds` with a message saying how to restart it, instead of the client's
default of retrying for ten minutes.
"""

from __future__ import annotations

import atexit
import os
import shutil
import threading
from typing import Any, Literal

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr
from pyspark.sql import SparkSession

from pysetl_dagster.errors import PySetlSparkError
from pysetl_dagster.spark.cancel import stop_watching, watch_run
from pysetl_dagster.spark.connect import connect_session, make_active, release_connect_session

DEFAULT_MAX_CONCURRENT_FACTORIES = 4
"""Independent Factories a run executes at once by default: enough to fill a small machine's
cores with one-partition Factories; a Factory that already fills every core loses nothing
(FAIR pools share the cores), see docs/benchmarks.md "Parallel Factories"."""

_STOP_HOOK_LOCK = threading.Lock()
_STOP_HOOK_REGISTERED = False


def _stop_sessions() -> None:
    session = SparkSession._instantiatedSession  # the process-wide session, from any thread
    if session is not None:
        session.stop()


class PySparkSessionResource(ConfigurableResource):
    """SparkSession settings from Dagster config (and so from run config, profiles, `EnvVar`).

    `remote` points the session at a Spark Connect server (`sc://host:15002`) instead of a
    local or cluster master.
    """

    spark_config: dict[str, Any] = Field(
        default_factory=dict,
        description="Spark properties, e.g. {'spark.sql.shuffle.partitions': 8}.",
    )
    secret_config: dict[str, str] = Field(
        default_factory=dict,
        description="Spark properties holding secrets: give each as EnvVar('NAME') so run "
        "config shows the variable's name; Spark redacts them in its logs.",
    )
    master: str | None = Field(default="local[*]", description="spark.master; None keeps Spark's.")
    app_name: str = Field(default="pysetl-dagster", description="spark.app.name")
    remote: str | None = Field(default=None, description="Spark Connect URL, e.g. sc://localhost")
    stop_at_exit: bool = Field(default=True, description="Stop the session when the process exits.")
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="How PySetl's and the Factories' log records appear in the run log: "
        "'[run=… asset=… factory=…] message' or one JSON object per record.",
    )
    connect_retry_seconds: float = Field(
        default=20.0,
        gt=0,
        description="Spark Connect only: how long a call retries an unreachable server before "
        "it fails (the client's default is about ten minutes).",
    )
    cancel_on_terminate: bool = Field(
        default=True,
        description="Watch the run's status and cancel its Spark jobs (by tag) when the run is "
        "terminated, so a blocked Spark action ends within a second. Not on an ephemeral "
        "instance (plain `materialize()`), which nothing outside the process can terminate.",
    )

    max_concurrent_factories: int = Field(
        default=DEFAULT_MAX_CONCURRENT_FACTORIES,
        ge=1,
        description="How many independent Factories a run executes at the same time: the "
        "Factories of one Stage in the Stage job, the ready assets in the asset job (threads "
        "over this session on a classic session, in FAIR scheduler pools named per asset; "
        "processes under Spark Connect). 1 runs them one after another. The run config of "
        "the job's executor may override it (execution: config: max_concurrent_factories).",
    )

    _spark_session: Any = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """Start the session with the run (Dagster calls this when the run starts).

        Before any step loads its inputs through the IO manager, so every `getOrCreate` in the
        run returns this configured session; and, unless `cancel_on_terminate` is off, watch
        the run so terminating it cancels its Spark jobs.
        """
        self._init_session()
        run = context.run
        if self.cancel_on_terminate and run is not None and context.instance is not None:
            # Terminating the run (UI, GraphQL, instance) cancels its Spark jobs by tag.
            watch_run(context.instance, run.run_id, self._spark_session)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        """Release the run's per-run state when the run ends (Dagster calls this).

        The cancel watcher is per-run state. A classic session stays for the process (see
        `stop_at_exit`), so the next run in the process reuses it; a Connect session is the
        run's own and is released on the server.
        """
        if context.run is not None:
            stop_watching(context.run.run_id)
        if self.remote and self._spark_session is not None:
            release_connect_session(self._spark_session)
            self._spark_session = None

    def _init_session(self) -> None:
        if self._spark_session is not None:
            return
        if self.remote:
            self._spark_session = connect_session(
                self.remote,
                {"spark.app.name": self.app_name, **self.spark_config, **self.secret_config},
                self.connect_retry_seconds,
            )
            return
        _require_java()
        conf: dict[str, Any] = {"spark.app.name": self.app_name}
        if self.master:
            conf["spark.master"] = self.master
        if not self.remote:
            # Factories run on threads of this session at the same time: share its cores
            # fairly, one pool per asset (see spark/labels.py), unless configured otherwise.
            conf["spark.scheduler.mode"] = "FAIR"
        conf.update(self.spark_config)
        conf.update(self.secret_config)
        # imported here: dagster-pyspark (and dagster-spark under it) cost ~0.2 s of import,
        # paid only by a process that starts a session
        from dagster_pyspark.resources import spark_session_from_config

        self._spark_session = spark_session_from_config(conf)
        if self.stop_at_exit:
            _register_stop_hook()

    @property
    def spark_session(self) -> SparkSession:
        """The run's SparkSession, started on first use (and, under Connect, made the active
        session of the calling thread, so the Factories' `getActiveSession()` finds it)."""
        self._init_session()
        session: SparkSession | None = self._spark_session  # a PrivateAttr: Any
        assert session is not None
        if self.remote:
            make_active(session)
        return session

    @property
    def is_connect(self) -> bool:
        """Whether runs use a Spark Connect session (no JVM in the run process)."""
        return bool(self.remote)

    @property
    def spark_context(self) -> Any:
        """The session's SparkContext (classic sessions only: Spark Connect has none)."""
        return self.spark_session.sparkContext


def _require_java() -> None:
    """Spark without Java fails with a long gateway traceback; say what to do instead."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and os.access(os.path.join(java_home, "bin", "java"), os.X_OK):
        return
    if shutil.which("java") is None:
        raise PySetlSparkError(
            "Spark needs Java 17 and 'java' is not on PATH (and JAVA_HOME is not set): install "
            "it (e.g. 'apt-get install openjdk-17-jre-headless') or set JAVA_HOME."
        )


def _register_stop_hook() -> None:
    global _STOP_HOOK_REGISTERED
    with _STOP_HOOK_LOCK:
        if not _STOP_HOOK_REGISTERED:
            atexit.register(_stop_sessions)
            _STOP_HOOK_REGISTERED = True
