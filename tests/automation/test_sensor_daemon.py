"""The real `dagster-daemon` with the file sensor on: a dropped file starts a run that succeeds.

A lean instance of its own (SQLite in a temporary DAGSTER_HOME, no webserver): the daemon loads
`tests.fixtures.sensor_location`, ticks the sensor every second and launches the requested run in a
subprocess, as in production.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef

from tests.conftest import ROOT
from tests.fixtures.inbox_pipeline import write_csv

RUN_TIMEOUT = 300


@dataclass
class Daemon:
    home: Path
    inbox: Path
    storage: Path
    log: Path
    popen: subprocess.Popen[bytes]

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(self.home)))

    def tail(self) -> str:
        return self.log.read_text()[-4000:] if self.log.exists() else ""


@pytest.fixture(scope="session")
def sensor_daemon() -> Iterator[Daemon]:
    tmp = Path(tempfile.mkdtemp(prefix="pysetl-sensor-daemon-"))
    home, inbox, storage = tmp / "home", tmp / "inbox", tmp / "storage"
    for d in (home, inbox, storage):
        d.mkdir()
    # the daemon starts a queued run within a second (as scripts/dev), not Dagster's 5 s
    (home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\nrun_queue:\n  dequeue_interval_seconds: 1\n"
    )
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PYSETL_TEST_INBOX": str(inbox),
        "PYSETL_DAGSTER_STORAGE": str(storage),
        "PYTHONPATH": str(ROOT),
        "PYSPARK_PYTHON": sys.executable,
    }
    # The instance (its SQLite schema) exists before the daemon starts: created by the test
    # and the daemon at once, they raced ("table secondary_indexes already exists") under load.
    dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))).dispose()
    log = tmp / "daemon.log"
    with open(log, "a") as out:
        popen = subprocess.Popen(
            [str(Path(sys.executable).with_name("dagster-daemon")), "run",
             "-m", "tests.fixtures.sensor_location"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        yield Daemon(home, inbox, storage, log, popen)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGTERM)
        try:
            popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGKILL)
            popen.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


def test_daemon_runs_the_file_sensor_and_the_run_succeeds(sensor_daemon: Daemon) -> None:
    # Written under a temporary name, then renamed: the sensor never sees a half-copied file.
    part = write_csv(sensor_daemon.inbox / "day1.csv.part", [("x", 4), ("y", 6)])
    part.rename(sensor_daemon.inbox / "day1.csv")

    instance = sensor_daemon.instance()
    deadline = time.monotonic() + RUN_TIMEOUT
    run = None
    while time.monotonic() < deadline:
        assert sensor_daemon.popen.poll() is None, "the daemon exited:\n" + sensor_daemon.tail()
        runs = instance.get_runs(dg.RunsFilter(tags={"dagster/sensor_name": "inbox_new_files"}))
        if runs and runs[0].is_finished:
            run = runs[0]
            break
        time.sleep(0.5)
    assert run is not None, (
        f"no finished sensor run within {RUN_TIMEOUT} s:\n" + sensor_daemon.tail()
    )
    assert run.status == dg.DagsterRunStatus.SUCCESS, sensor_daemon.tail()
    assert run.tags["pysetl/new_files"] == '["day1.csv"]'
    assert instance.get_latest_materialization_event(dg.AssetKey("event_totals")) is not None
    assert (sensor_daemon.storage / "event_totals" / "_current.json").exists()
    # one file, one run: later ticks requested nothing more
    time.sleep(3)
    runs = instance.get_runs(dg.RunsFilter(tags={"dagster/sensor_name": "inbox_new_files"}))
    assert len(runs) == 1
