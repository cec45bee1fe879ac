"""`WarmRunLauncher` launching real runs: real worker processes, a real instance on disk.

The instance (a temporary DAGSTER_HOME) is configured with the launcher in its dagster.yaml,
as scripts/dev configures it; runs of `tests/fixtures/launch_jobs.py` are created with their
code origin and launched through `instance.launch_run`, as the daemon's run queue launches
them. The waiting worker preloads a probe module written for the test (`launch_probe`), so the
run's own log says whether it ran in the warm worker.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef

from pysetl_dagster.launch.launcher import RUN_WORKER_PID_TAG, WarmRunLauncher
from tests.fixtures import launch_jobs

DAGSTER_YAML = """telemetry:
  enabled: false
run_launcher:
  module: pysetl_dagster.launch.launcher
  class: WarmRunLauncher
  config:
    preload_modules: [dagster, dagster._cli, launch_probe]
"""


@pytest.fixture
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dg.DagsterInstance]:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "launch_probe.py").write_text("VERSION = 1\n")
    # the workers inherit this environment: the probe importable, the tests package too
    paths = [str(probe), str(Path(launch_jobs.__file__).parents[2])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")]))
    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
    try:
        yield instance
    finally:
        instance.run_launcher.dispose()
        instance.dispose()


def _launch(instance: dg.DagsterInstance, job: dg.JobDefinition, **config: Any) -> str:
    recon = dg.reconstructable(job)
    run = instance.create_run_for_job(
        job_def=job, job_code_origin=recon.get_python_origin(), run_config=config or None
    )
    instance.launch_run(run.run_id, workspace=None)  # type: ignore[arg-type]
    return run.run_id


def _finished(instance: dg.DagsterInstance, run_id: str, timeout: float = 120) -> dg.DagsterRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run_id)
        if run is not None and run.is_finished:
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} not finished in {timeout} s")


def _messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [record.message for record in instance.all_logs(run_id)]


def _run_to_success(
    instance: dg.DagsterInstance, job: dg.JobDefinition
) -> tuple[dg.DagsterRun, list[str]]:
    """Launch `job`, wait for its end, assert it succeeded; the run and its log's messages."""
    run_id = _launch(instance, job)
    run = _finished(instance, run_id)
    log = _messages(instance, run_id)
    assert run.status == dg.DagsterRunStatus.SUCCESS, log
    return run, log


def _wait_for_spare(instance: dg.DagsterInstance) -> None:
    launcher = instance.run_launcher
    assert isinstance(launcher, WarmRunLauncher)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(w.alive and w.is_ready() for w in launcher._spares.values()):
            return
        time.sleep(0.1)
    raise AssertionError("no run worker waiting, its imports done, after the first run ended")


def test_the_second_run_runs_in_the_worker_that_waited_for_it(
    instance: dg.DagsterInstance,
) -> None:
    assert isinstance(instance.run_launcher, WarmRunLauncher)
    _, log = _run_to_success(instance, launch_jobs.quick)
    assert any("a fresh run worker (none was waiting)" in m for m in log), log
    assert any("probe preloaded: False" in m for m in log), log  # a cold worker imports nothing

    _wait_for_spare(instance)
    run, log = _run_to_success(instance, launch_jobs.quick)
    assert any("Run handed to a run worker waiting for" in m for m in log), log
    assert any("probe preloaded: True" in m for m in log), log  # ran where the imports were
    pid = run.tags[RUN_WORKER_PID_TAG]
    assert any(f"Started process for run (pid: {pid})" in m for m in log), log


def test_a_module_changed_while_the_worker_waited_runs_in_a_fresh_interpreter(
    instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    _run_to_success(instance, launch_jobs.quick)
    _wait_for_spare(instance)
    (tmp_path / "probe" / "launch_probe.py").write_text("VERSION = 22\n")  # size and mtime move
    _, log = _run_to_success(instance, launch_jobs.quick)
    # the waiting worker was handed the run, saw the change and replaced itself: nothing stale
    assert any("Run handed to a run worker waiting for" in m for m in log), log
    assert any("probe preloaded: False" in m for m in log), log


def test_terminate_interrupts_the_run_in_its_worker(instance: dg.DagsterInstance) -> None:
    run_id = _launch(instance, launch_jobs.slow, ops={"wait": {"config": {"seconds": 300.0}}})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run_id)
        assert run is not None
        if any('Started execution of step "wait"' in m for m in _messages(instance, run_id)):
            break
        time.sleep(0.2)
    else:
        raise AssertionError(_messages(instance, run_id))
    pid = int(run.tags[RUN_WORKER_PID_TAG])
    # a launcher of another process (the webserver's) terminates by the pid on the run's tags
    other = WarmRunLauncher()
    other.register_instance(instance)
    started = time.monotonic()
    assert other.terminate(run_id)
    done = _finished(instance, run_id, timeout=60)
    assert done.status == dg.DagsterRunStatus.CANCELED, _messages(instance, run_id)
    assert time.monotonic() - started < 30
    instance.run_launcher.join(timeout=30)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not other.terminate(run_id)  # finished: nothing to do
