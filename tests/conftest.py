"""One real SparkSession (local[2]) for the whole test session, and fresh Dagster resources."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pysetl_dagster import PySparkSessionResource, SparkParquetIOManager  # noqa: E402
from pysetl_dagster.spark.labels import no_leaked_spark_labels  # noqa: E402
from pysetl_dagster.testing import assert_frame_equal  # noqa: E402


@pytest.fixture(autouse=True)
def _no_current_dagster_instance_leaks() -> Iterator[None]:
    """Each test starts with no "current" Dagster instance storage, and leaves none behind.

    `with DagsterInstance` sets Dagster's current defs-state storage (a ContextVar holding a
    weak reference to the instance). When a test's instance is entered in one place and
    collected elsewhere, the variable outlives it, and every later `Definitions` load in the
    session fails with "Attempted to resolve undefined DagsterInstance weakref" (96 tests of a
    clean-clone run, all after tests/automation). Resetting it around each test keeps one
    test's instance out of the next."""
    from dagster._core.storage.defs_state.base import set_defs_state_storage

    with set_defs_state_storage(None):
        yield


# Spark's launcher adds these to the java command of every driver it starts (`pyspark`'s
# gateway, `spark-submit`: dagster CLI runs, daemon runs, code servers, Connect servers) and of
# its daemons (a standalone master and workers), never to the launcher itself.
_JVM_OPTION_VARIABLES = ("SPARK_SUBMIT_OPTS", "SPARK_DAEMON_JAVA_OPTS")


def fast_jvm_options() -> str:
    """Java options that make a Spark JVM start in about half the CPU, and nothing else.

    The suite starts dozens of JVMs in other processes (every `dagster` CLI run, daemon run,
    code server, verify side, Connect server), and most of a small run's JVM CPU is start-up: a
    classic `spark-submit` of a tiny job measured 18-19 CPU s as is, 10 with migrate's
    class-data archive (`migrate/jvm.py`, built once per machine and kept in its cache folder).
    The archive changes how classes load, nothing a JVM computes; a JVM that cannot use it
    (another class path) starts as before, silently (`-Xshare:auto`, cds logging off).

    Not taken: the client compiler only (`-XX:TieredStopAtLevel=1`, 5.5-6.3 CPU s for the same
    job): its bigger stack frames made Spark's analysis of tests/checks/test_unique_proof.py's
    deep plan overflow the stack (StackOverflowError) where C2 does not, a changed outcome. Nor
    `-XX:+UseSerialGC`: tests/spark/test_memory.py reads the JVM's memory.
    """
    from pysetl_dagster.migrate.jvm import ensure_archive

    archive = ensure_archive()  # built here on a machine without one (once, ~40 s)
    if archive is None:
        return ""
    return f"-Xshare:auto -XX:SharedArchiveFile={archive} -Xlog:cds=off -Xlog:cds+dynamic=off"


@pytest.fixture(scope="session", autouse=True)
def _fast_jvm_start() -> Iterator[None]:
    """Every JVM of the session (this process's and those of the processes it starts, which
    inherit the environment) starts with `fast_jvm_options()`; the user's own options last."""
    saved = {name: os.environ.get(name) for name in _JVM_OPTION_VARIABLES}
    options = fast_jvm_options()
    for name, users in saved.items():
        os.environ[name] = " ".join(o for o in (options, users) if o)
    yield
    for name, users in saved.items():
        if users is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = users


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master("local[2]")
        .appName("pysetl-dagster-tests")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.maxMetadataStringLength", "10000")  # full paths: count_input_scans
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    return tmp_path / "storage"


@pytest.fixture
def resources(spark: SparkSession, storage: Path) -> dict[str, Any]:
    """The resources a run needs; the Spark resource reuses the test session (getOrCreate)."""
    return {
        "pyspark": PySparkSessionResource(master="local[2]", stop_at_exit=False),
        "io_manager": SparkParquetIOManager(base_path=str(storage)),
    }


def assert_same_data(actual: DataFrame, expected: DataFrame) -> None:
    """Same columns, types and rows (as a multiset); nullability may differ after Parquet.
    (`pysetl_dagster.testing.assert_frame_equal`, which shows the first differing rows.)"""
    assert_frame_equal(actual, expected)


@pytest.fixture(scope="session")
def native_outputs(spark: SparkSession) -> dict[str, DataFrame]:
    """Every Factory's output from a plain PySetl `Pipeline.run()` of the example, by asset key.

    Checkpointed, so what later runs do to the Factory classes cannot change it.
    """
    import definitions
    from definitions.retail.pipeline import FACTORIES, build_pipeline

    # PySetl's Stage sets a job group per Factory and never clears it: keep it off this thread.
    with no_leaked_spark_labels(spark):
        pipeline = build_pipeline().run()
    return {
        definitions.retail.asset_key(f).to_user_string(): pipeline.get_output(f).localCheckpoint()
        for f in FACTORIES
    }


# The production stack (PostgreSQL, daemon, webserver, code server) and a Spark Connect
# server: each one per test session, started when a selected test needs it.
pytest_plugins = ["tests.fixtures.prod_stack", "tests.fixtures.connect"]
