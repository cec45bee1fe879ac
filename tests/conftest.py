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
