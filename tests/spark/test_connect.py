"""Runs on a Spark Connect session (issue 17): launched as the UI launches them (GraphQL
`launchRun` on a stored instance, the default run launcher starting a run process that has no
JVM), against the test session's one Connect server (tests/fixtures/connect.py).

- the example's retail pipeline stores the same data as PySetl's own classic run, and two
  runs at the same time on the one server see neither each other's temp views nor tags;
- terminating a run stops its Spark job on the server within 5 s;
- a server killed under a run fails the run, saying so and how to restart it, the earlier
  version stays current, and after a restart the next run succeeds.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster import DagsterEventType, DagsterRunStatus
from pyspark.sql import DataFrame, SparkSession

from pysetl_dagster import PySetlStorage
from pysetl_dagster.metadata import MetadataKey, TagKey
from tests.conftest import assert_same_data
from tests.fixtures.connect import ConnectTestServer
from tests.fixtures.slow_pipeline import LAUNCH, TERMINATE

LOCATION = Path(__file__).resolve().parents[1] / "fixtures" / "connect_location.py"


@dataclass
class Location:
    """The instance, the GraphQL context of the Connect code location, and its storage."""

    instance: dg.DagsterInstance
    context: Any
    storage: Path
    probe_file: Path

    def launch(self, job: str, tags: dict[str, str] | None = None) -> str:
        from dagster_graphql.test.utils import execute_dagster_graphql, infer_job_selector

        params = {
            "selector": infer_job_selector(self.context, job),
            "runConfigData": {},
            "mode": "default",
            "executionMetadata": {
                "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]
            },
        }
        result = execute_dagster_graphql(self.context, LAUNCH, {"params": params}).data
        launched = result["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        return str(launched["run"]["runId"])

    def terminate(self, run_id: str) -> None:
        from dagster_graphql.test.utils import execute_dagster_graphql

        result = execute_dagster_graphql(self.context, TERMINATE, {"runId": run_id}).data
        assert result["terminateRun"]["__typename"] == "TerminateRunSuccess", result

    def wait(self, run_id: str, timeout: float = 240) -> dg.DagsterRun:
        deadline = time.monotonic() + timeout
        while True:
            run = self.instance.get_run_by_id(run_id)
            assert run is not None
            if run.is_finished:
                return run
            assert time.monotonic() < deadline, f"run {run_id} not finished: {run.status}"
            time.sleep(0.5)

    def failure(self, run_id: str) -> str:
        """The run's step failure messages and errors, joined."""
        parts = []
        for record in self.instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE):
            event = record.dagster_event
            error = getattr(event.event_specific_data, "error", None) if event else None
            parts.append(error.to_string() if error is not None else record.message)
        return "\n".join(parts)

    def materializations(self, run_id: str) -> dict[str, dict[str, Any]]:
        """Each materialized asset's metadata (raw values), by asset key."""
        found: dict[str, dict[str, Any]] = {}
        for record in self.instance.all_logs(
            run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION
        ):
            mat = record.asset_materialization
            assert mat is not None
            found[mat.asset_key.to_user_string()] = {k: v.value for k, v in mat.metadata.items()}
        return found

    def stored(self, spark: SparkSession, key: str) -> DataFrame:
        store = PySetlStorage(base_path=str(self.storage))
        path = store.current_version_path(dg.AssetKey.from_user_string(key))
        return spark.read.parquet(str(path))

    def current_version(self, key: str) -> str | None:
        manifest = PySetlStorage(base_path=str(self.storage)).current_manifest(
            dg.AssetKey.from_user_string(key)
        )
        return None if manifest is None else str(manifest["version"])


@pytest.fixture(scope="module")
def location(
    connect_server: ConnectTestServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Location]:
    from dagster_graphql.test.utils import define_out_of_process_context

    home = tmp_path_factory.mktemp("connect-home")
    probe_file = home / "probe_seconds"
    probe_file.write_text("0")
    env = {
        # the code server and the run processes it starts inherit these
        "PYSETL_SPARK_REMOTE": connect_server.url,
        "PYSETL_DAGSTER_STORAGE": str(home / "storage"),
        "PYSETL_CONNECT_PROBE_FILE": str(probe_file),
        "PYSETL_SLOW_SECONDS": "120",
        "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    overrides = {
        "telemetry": {"enabled": False},
        "run_coordinator": {  # launch on submit, as `dagster dev` does once its daemon dequeues
            "module": "dagster._core.run_coordinator",
            "class": "DefaultRunCoordinator",
        },
    }
    try:
        with (
            dg.DagsterInstance.local_temp(str(home), overrides=overrides) as instance,
            define_out_of_process_context(str(LOCATION), "defs", instance) as context,
        ):
            yield Location(instance, context, home / "storage", probe_file)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_example_on_connect_equals_classic_and_concurrent_runs_stay_apart(
    location: Location, spark: SparkSession, native_outputs: dict[str, DataFrame]
) -> None:
    location.probe_file.write_text("4")  # the two probes overlap on the server
    no_cache = {TagKey.CACHE: "off"}
    retail = location.launch("retail_assets")
    probes = [location.launch("probe_assets", no_cache) for _ in range(2)]

    run = location.wait(retail)
    assert run.status == DagsterRunStatus.SUCCESS, location.failure(retail)
    for key, expected in native_outputs.items():
        assert_same_data(location.stored(spark, key), expected)
    metadata = location.materializations(retail)
    assert set(metadata) == set(native_outputs)
    for key, values in metadata.items():
        # what Connect cannot report is said, what it observes is there
        assert "Spark Connect" in values[MetadataKey.SPARK_UNAVAILABLE], key
        assert values["spark/output_records"] == values["dagster/row_count"], key
        assert "spark/jobs" not in values and "spark/ui" not in values, key

    for run_id in probes:
        run = location.wait(run_id)
        assert run.status == DagsterRunStatus.SUCCESS, location.failure(run_id)
    # each run wrote its own version
    records = PySetlStorage(base_path=str(location.storage)).list_versions(dg.AssetKey("probe"))
    by_run = {r["run_id"]: r["path"] for r in records}
    for run_id in probes:
        (row,) = spark.read.parquet(str(by_run[run_id])).collect()
        assert row.run_tag == f"dagster-run-{run_id}", row  # its own tags, only
        assert row.view_before is False, row  # a fresh session: no view of the other run
        assert row.view_after == row.run_tag, row  # nobody replaced its view meanwhile


def test_terminating_a_connect_run_stops_its_job_on_the_server(
    location: Location, connect_server: ConnectTestServer
) -> None:
    run_id = location.launch("slow_assets")
    tag = f"dagster-run-{run_id}"
    deadline = time.monotonic() + 120
    while not connect_server.running_jobs(tag):  # the run's tag reaches the server's jobs
        run = location.instance.get_run_by_id(run_id)
        assert run is not None and not run.is_finished, location.failure(run_id)
        assert time.monotonic() < deadline, "the run's Spark job did not start on the server"
        time.sleep(0.3)
    start = time.monotonic()
    location.terminate(run_id)
    while connect_server.running_jobs(tag) != []:  # None: the API did not answer in time
        assert time.monotonic() - start < 5, "the run's Spark job still runs 5 s after terminate"
        time.sleep(0.1)
    assert location.wait(run_id, 60).status == DagsterRunStatus.CANCELED


def test_a_killed_server_fails_the_run_and_a_restarted_one_serves_the_next(
    location: Location, connect_server: ConnectTestServer
) -> None:
    no_cache = {TagKey.CACHE: "off"}
    if location.current_version("probe") is None:  # run alone: store a first version
        location.probe_file.write_text("0")
        first = location.launch("probe_assets", no_cache)
        assert location.wait(first).status == DagsterRunStatus.SUCCESS, location.failure(first)
    earlier = location.current_version("probe")
    location.probe_file.write_text("6")
    doomed = location.launch("probe_assets", no_cache)
    deadline = time.monotonic() + 120
    while not list(location.instance.all_logs(doomed, of_type=DagsterEventType.STEP_START)):
        assert time.monotonic() < deadline, "the probe's step did not start"
        time.sleep(0.2)
    connect_server.kill()
    run = location.wait(doomed)
    message = location.failure(doomed)
    assert run.status == DagsterRunStatus.FAILURE
    assert f"Spark Connect server at {connect_server.url}" in message, message
    assert "Start it again" in message, message
    assert location.current_version("probe") == earlier  # nothing half-written became current

    connect_server.restart()
    location.probe_file.write_text("0")
    after = location.launch("probe_assets", no_cache)
    assert location.wait(after).status == DagsterRunStatus.SUCCESS, location.failure(after)
    assert location.current_version("probe") not in (None, earlier)


def test_profile_remote_and_the_server_starters_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`$PYSETL_SPARK_REMOTE` picks the session (`classic` turns Connect off); starting a
    server on a busy port or without Java fails at once with one line saying what to do."""
    import socket

    from definitions import PROFILES_FILE
    from pysetl_dagster import load_profile
    from pysetl_dagster.spark.connect_server import ConnectServerError, start_connect_server

    monkeypatch.setenv("PYSETL_SPARK_REMOTE", "sc://127.0.0.1:15002")
    assert load_profile(PROFILES_FILE, "dev").spark_resource().remote == "sc://127.0.0.1:15002"
    monkeypatch.setenv("PYSETL_SPARK_REMOTE", "classic")
    assert load_profile(PROFILES_FILE, "dev").spark_resource().remote is None

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConnectServerError, match=f"port 127.0.0.1:{port} is busy"):
            start_connect_server(tmp_path / "busy", port=port)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConnectServerError, match="Java not found") as error:
        start_connect_server(tmp_path / "nojava")
    assert "\n" not in str(error.value)
