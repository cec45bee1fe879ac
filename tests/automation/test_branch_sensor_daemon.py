"""Branching sensors under the real `dagster-daemon` (issue 20).

One daemon for the module (SQLite in a temporary DAGSTER_HOME, no webserver) loads
`tests.fixtures.branching_location`, whose three branching sensors tick every second. The test
writes new versions of the shared `numbers` asset in-process (0, then 5, then 1 rows) and
watches what the daemon does:

- 0 rows: neither condition of `gate` holds: no run, and the tick's skip reason names both
  conditions, their inputs and values;
- 5 rows: one run of exactly `many_doubled`; 1 row: the other branch, `few_doubled` only;
- the `ab` sensor assigns a, b, a to the three versions (alternate), on the run's tags; its runs
  carry `test/hold`, which the run queue never releases (only the assignment is under test);
- `broken`'s external decision raises: every tick fails with Factory, condition and error.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef
from dagster._core.scheduler.instigation import InstigatorTick, TickStatus
from pyspark.sql import SparkSession

from pysetl_dagster import PySparkSessionResource
from tests.conftest import ROOT
from tests.fixtures.branching_location import HOLD_TAG, build

TIMEOUT = 420
DAGSTER_YAML = f"""telemetry:
  enabled: false
run_queue:
  max_concurrent_runs: 4
  dequeue_interval_seconds: 1  # as scripts/dev: a queued run starts within a second, not 5
  tag_concurrency_limits:
    - key: "{HOLD_TAG}"
      limit: 0
"""


@dataclass
class Daemon:
    home: Path
    storage: Path
    log: Path
    popen: subprocess.Popen[bytes]
    instance: dg.DagsterInstance

    def tail(self) -> str:
        return self.log.read_text()[-4000:] if self.log.exists() else ""

    def wait(self, what: str, found: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            assert self.popen.poll() is None, "the daemon exited:\n" + self.tail()
            value = found()
            if value:
                return value
            time.sleep(0.5)
        raise AssertionError(f"not within {TIMEOUT} s: {what}\n{self.tail()}")

    def runs(self, sensor: str) -> list[dg.DagsterRun]:
        found = self.instance.get_runs(dg.RunsFilter(tags={"dagster/sensor_name": sensor}))
        if not found:
            return []
        records = self.instance.get_run_records(dg.RunsFilter(run_ids=[r.run_id for r in found]))
        return [r.dagster_run for r in sorted(records, key=lambda r: r.create_timestamp)]

    def ticks(self, sensor: str) -> list[InstigatorTick]:
        for state in self.instance.all_instigator_state():
            if state.instigator_name == sensor:
                return list(
                    self.instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=50)
                )
        return []


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    tmp = Path(tempfile.mkdtemp(prefix="pysetl-branch-daemon-"))
    home, storage = tmp / "home", tmp / "storage"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PYSETL_DAGSTER_STORAGE": str(storage),
        "PYTHONPATH": str(ROOT),
        "PYSPARK_PYTHON": sys.executable,
    }
    # The instance (its SQLite schema) exists before the daemon starts: created by both at
    # once, they raced ("table ... already exists", "more than one head") under load.
    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
    log = tmp / "daemon.log"
    with open(log, "a") as out:
        popen = subprocess.Popen(
            [str(Path(sys.executable).with_name("dagster-daemon")), "run",
             "-m", "tests.fixtures.branching_location"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        yield Daemon(home, storage, log, popen, instance)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGTERM)
        try:
            popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGKILL)
            popen.wait(timeout=10)
        instance.dispose()
        shutil.rmtree(tmp, ignore_errors=True)


def _materialized(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    return {
        r.event_log_entry.dagster_event.event_specific_data.materialization.asset_key.to_user_string()  # type: ignore[union-attr]
        for r in records
    }


def test_the_sensor_picks_the_branch_the_data_says_and_ab_follows_its_rule(
    daemon: Daemon, spark: SparkSession
) -> None:
    defs = build(str(daemon.storage), PySparkSessionResource(master="local[2]", stop_at_exit=False))
    job = defs.resolve_job_def("gate_assets")

    def write_numbers(n: int) -> str:
        result = job.execute_in_process(
            asset_selection=[dg.AssetKey("numbers")],
            run_config={"ops": {"numbers": {"config": {"n": n}}}},
        )
        assert result.success
        (event,) = result.get_asset_materialization_events()
        return str(event.materialization.metadata["pysetl/storage_version"].value)

    # 0 rows: no condition holds, no run; the skip reason names each condition and its value
    empty = write_numbers(0)
    tick = daemon.wait(
        "a gate tick skipping on the empty version",
        lambda: next(
            (t for t in daemon.ticks("gate_branching") if empty in (t.skip_reason or "")), None
        ),
    )
    assert tick.status == TickStatus.SKIPPED
    assert "no run was started" in tick.skip_reason
    assert "when_data(Numbers, rows >= 3): False (recorded with Numbers version" in tick.skip_reason
    assert "when_data(Numbers, 1 <= rows <= 2): False" in tick.skip_reason
    assert daemon.runs("gate_branching") == []
    daemon.wait("the first A/B assignment", lambda: len(daemon.runs("ab_branching")) == 1)

    # 5 rows, then 1 row: one run each, of exactly the branch whose condition holds
    write_numbers(5)
    daemon.wait("a run of the 'many' branch", lambda: len(daemon.runs("gate_branching")) == 1)
    daemon.wait("the second A/B assignment", lambda: len(daemon.runs("ab_branching")) == 2)
    write_numbers(1)
    daemon.wait("a run of the 'few' branch", lambda: len(daemon.runs("gate_branching")) == 2)
    daemon.wait("the third A/B assignment", lambda: len(daemon.runs("ab_branching")) == 3)

    many, few = daemon.runs("gate_branching")
    assert many.tags["pysetl/branch_taken"] == "ManyDoubled: runs"
    assert many.tags["pysetl/condition.many_doubled"].startswith(
        "true: when_data(Numbers, rows >= 3): True (recorded"
    )
    assert few.tags["pysetl/branch_taken"] == "FewDoubled: runs"
    assert few.tags["pysetl/condition.many_doubled"].startswith("false:")
    ab = daemon.runs("ab_branching")
    assert [r.tags["pysetl/pricing"] for r in ab] == ["a", "b", "a"]
    assert [r.tags["pysetl/ab.pricing"] for r in ab] == [
        f"{label} by alternate, assignment #{i}" for i, label in enumerate("aba", start=1)
    ]
    assert [r.asset_selection for r in ab] == [{dg.AssetKey(f"pricing_{label}")} for label in "aba"]

    # the daemon creates a run (NOT_STARTED) and then submits it: wait for the submission; the
    # queue must then hold every A/B run (its tag's limit is 0), none may start
    def submitted() -> list[dg.DagsterRun] | None:
        found = daemon.runs("ab_branching")
        return None if any(r.status == dg.DagsterRunStatus.NOT_STARTED for r in found) else found

    ab = daemon.wait("the A/B runs to be submitted", submitted)
    assert {r.status for r in ab} == {dg.DagsterRunStatus.QUEUED}

    for run in (many, few):

        def finished(run_id: str = run.run_id) -> dg.DagsterRun | None:
            found = daemon.instance.get_run_by_id(run_id)
            return found if found is not None and found.is_finished else None

        done = daemon.wait(f"run {run.run_id} to finish", finished)
        assert done.status == dg.DagsterRunStatus.SUCCESS, daemon.tail()
    # only the chosen branch's asset materialized in each run
    assert _materialized(daemon.instance, many.run_id) == {"many_doubled"}
    assert _materialized(daemon.instance, few.run_id) == {"few_doubled"}
    # the step took the sensor's decision instead of evaluating the condition again
    logs = [
        e.message
        for e in daemon.instance.all_logs(many.run_id)
        if "runs: decided by sensor gate_branching before the run" in (e.message or "")
    ]
    assert logs, "the step re-evaluated the condition"


def test_a_failing_condition_fails_the_tick_naming_it(daemon: Daemon) -> None:
    tick = daemon.wait(
        "a failed tick of the broken sensor",
        lambda: next(
            (t for t in daemon.ticks("broken_branching") if t.status == TickStatus.FAILURE), None
        ),
    )
    assert tick.error is not None
    message = tick.error.to_string()  # Dagster's error, caused by ours: the UI shows the chain
    assert "Factory Approved (asset approved)" in message
    assert "when_external('approval')" in message
    assert "ConnectionError: approval service unreachable (test)" in message
    assert daemon.runs("broken_branching") == []
