"""`WarmRunLauncher`: Dagster's run worker, started before the run it will execute.

Why: with Dagster's `DefaultRunLauncher` every run, a click on *Materialize* in `dagster dev`
included, waits for the code server to spawn a fresh interpreter that imports Dagster, Spark's
client, pandas, pandera and pysetl before the run's first event: ~2 CPU seconds, most of a
warm run's latency once Spark Connect has taken the JVM out of the run process. This launcher
keeps one such worker ready (`worker.py`: the imports done, the code location not yet
imported) and hands it the next run; the run then executes exactly as
``dagster api execute_run`` executes it, the command Dagster's container launchers run.

What stays Dagster's: the run's events and status, the interrupt on terminate (SIGTERM, which
Dagster's run worker turns into an interrupt of the run, as in a container that is stopped),
the secrets injected into the run's environment. What this launcher adds: the worker's pid on
the run's tags (`pysetl/run_worker_pid`), so any process of the instance can terminate it,
and a health check for Dagster's run monitoring.

A spare worker is started as soon as a run is handed to a worker (its imports, ~2 CPU seconds,
overlap the run, which mostly waits on Spark), one per Python executable, so the next click
finds it ready. A run whose code location uses another executable than the spare's, or that
comes before the first spare exists, gets a fresh worker (Dagster's cold path).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from dagster import Field
from dagster._core.launcher.base import (
    CheckRunHealthResult,
    LaunchRunContext,
    RunLauncher,
    WorkerStatus,
)
from dagster._core.storage.dagster_run import DagsterRun
from dagster._serdes.config_class import ConfigurableClass, ConfigurableClassData

from pysetl_dagster.errors import PySetlError
from pysetl_dagster.launch.worker import DEFAULT_PRELOAD

RUN_WORKER_PID_TAG = "pysetl/run_worker_pid"
"""The run's worker process id, for `terminate` and the health check from any process."""


class RunLaunchError(PySetlError):
    """A run could not be handed to a run worker."""


@dataclass
class _Worker:
    """One worker process and when it was started."""

    popen: subprocess.Popen[bytes]
    executable: str
    ready_fd: int
    """Read end of the pipe on which the worker says its imports are done."""
    started: float = field(default_factory=time.monotonic)
    ready: bool = False

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def is_ready(self) -> bool:
        """Whether the worker has finished its imports (without waiting)."""
        if not self.ready and select.select([self.ready_fd], [], [], 0)[0]:
            self.ready = os.read(self.ready_fd, 16).startswith(b"ready")
        return self.ready

    def hand(self, input_json: str) -> None:
        """Give the worker its run (one line on its standard input) and close the pipe."""
        stdin = self.popen.stdin
        assert stdin is not None
        stdin.write(input_json.encode() + b"\n")
        stdin.flush()
        stdin.close()


class WarmRunLauncher(RunLauncher, ConfigurableClass):
    """Launches each run in a run worker that already imported what every run imports.

    Args:
        preload_modules: modules the waiting worker imports ahead (missing ones are skipped);
            by default Dagster, pandas, pyspark's classic and Connect clients, pandera, pysetl
            and this library's run-time modules. The code location itself is never imported
            ahead, so the run sees the code as it is when the run starts.
        inst_data: Dagster's record of the instance configuration this launcher came from.
    """

    def __init__(
        self,
        preload_modules: Sequence[str] = DEFAULT_PRELOAD,
        inst_data: ConfigurableClassData | None = None,
    ) -> None:
        self._inst_data = inst_data
        self._preload = list(preload_modules)
        self._lock = threading.Lock()
        self._spares: dict[str, _Worker] = {}
        self._running: dict[str, _Worker] = {}
        self._disposed = False
        super().__init__()  # type: ignore[no-untyped-call]

    # -- Dagster's configurable-class protocol ------------------------------------------------

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict[str, Field]:
        return {
            "preload_modules": Field(
                [str],
                is_required=False,
                default_value=list(DEFAULT_PRELOAD),
                description="Modules a waiting run worker imports ahead (missing ones skipped).",
            )
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> Self:
        return cls(
            preload_modules=config_value.get("preload_modules", list(DEFAULT_PRELOAD)),
            inst_data=inst_data,
        )

    # -- launching ----------------------------------------------------------------------------

    def launch_run(self, context: LaunchRunContext) -> None:
        from dagster._grpc.types import ExecuteRunArgs
        from dagster._serdes import serialize_value

        run = context.dagster_run
        origin = run.job_code_origin
        if origin is None:
            raise RunLaunchError(
                f"Run {run.run_id} of job '{run.job_name}' has no code origin, so no run worker "
                "can load its job: launch it from a code location (dagster dev, a workspace)."
            )
        executable = origin.executable_path or sys.executable
        input_json = serialize_value(
            ExecuteRunArgs(
                job_origin=origin, run_id=run.run_id, instance_ref=self._instance.get_ref()
            )
        )
        worker, warm = self._take_worker(executable)
        self._instance.add_run_tags(run.run_id, {RUN_WORKER_PID_TAG: str(worker.popen.pid)})
        try:
            worker.hand(input_json)
        except OSError as error:  # the worker died while waiting: fall back to a fresh one
            worker = self._start(executable, preload=False)
            self._instance.add_run_tags(run.run_id, {RUN_WORKER_PID_TAG: str(worker.popen.pid)})
            worker.hand(input_json)
            warm = False
            self._instance.report_engine_event(
                f"The waiting run worker had exited ({error}); started a fresh one.", run
            )
        how = (
            f"a run worker waiting for {time.monotonic() - worker.started:.1f} s"
            + ("" if worker.is_ready() else " (still importing)")
            if warm
            else "a fresh run worker (none was waiting)"
        )
        self._instance.report_engine_event(
            f"Run handed to {how}, pid {worker.popen.pid}.", run, cls=self.__class__
        )
        with self._lock:
            self._running[run.run_id] = worker
        threading.Thread(
            target=self._after_run, args=(run.run_id, worker), daemon=True, name="pysetl-run-worker"
        ).start()

    def _take_worker(self, executable: str) -> tuple[_Worker, bool]:
        with self._lock:
            spare = self._spares.pop(executable, None)
        if spare is not None and spare.alive:
            return spare, True
        return self._start(executable, preload=False), False

    def _start(self, executable: str, *, preload: bool = True) -> _Worker:
        """A worker process; `preload=False` imports nothing ahead (it is handed a run now)."""
        read_fd, write_fd = os.pipe()
        command = [executable, "-m", "pysetl_dagster.launch.worker", f"--ready-fd={write_fd}"]
        command.append("--preload=" + (",".join(self._preload) if preload else ""))
        try:
            popen = subprocess.Popen(
                command, stdin=subprocess.PIPE, env=_worker_env(executable), pass_fds=(write_fd,)
            )
        finally:
            os.close(write_fd)
        return _Worker(popen, executable, read_fd)

    def _after_run(self, run_id: str, worker: _Worker) -> None:
        """Have the next run's worker importing while this run runs; reap this one at its end."""
        self._ensure_spare(worker.executable)
        worker.popen.wait()
        with contextlib.suppress(OSError):
            os.close(worker.ready_fd)
        with self._lock:
            self._running.pop(run_id, None)
        self._ensure_spare(worker.executable)  # the spare may have died meanwhile

    def _ensure_spare(self, executable: str) -> None:
        with self._lock:
            old = self._spares.get(executable)
            if self._disposed or (old is not None and old.alive):
                return
        spare = self._start(executable)
        with self._lock:
            old = self._spares.get(executable)
            if self._disposed or (old is not None and old.alive):  # another thread was first
                _close(spare)
                return
            self._spares[executable] = spare

    # -- terminating and health ---------------------------------------------------------------

    def terminate(self, run_id: str) -> bool:
        if not self.has_instance:
            return False
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        self._instance.report_run_canceling(run)
        pid = _worker_pid(run)
        if pid is None or not _is_run_worker(pid):
            self._instance.report_engine_event(
                "No run worker process to terminate (it has exited, or the run was launched by "
                "another launcher).",
                run,
                cls=self.__class__,
            )
            return False
        os.kill(pid, signal.SIGTERM)  # Dagster's run worker interrupts the run on SIGTERM
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        pid = _worker_pid(run)
        if pid is None:
            return CheckRunHealthResult(WorkerStatus.NOT_FOUND, "no run worker pid on the run")
        if _is_run_worker(pid):
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(
            WorkerStatus.FAILED if not run.is_finished else WorkerStatus.SUCCESS,
            f"run worker {pid} is not running",
        )

    def join(self, timeout: int = 30) -> None:
        """Wait until the runs this launcher started have ended (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                workers = list(self._running.values())
            if not any(w.alive for w in workers):
                return
            time.sleep(0.1)
        raise TimeoutError(f"runs still running after {timeout} s: {sorted(self._running)}")

    def dispose(self) -> None:
        """Let the waiting workers go (they exit when their standard input closes)."""
        with self._lock:
            self._disposed = True
            spares, self._spares = list(self._spares.values()), {}
        for spare in spares:
            _close(spare)


def _close(worker: _Worker) -> None:
    with contextlib.suppress(OSError):
        os.close(worker.ready_fd)
    if worker.popen.stdin is not None and not worker.popen.stdin.closed:
        with contextlib.suppress(OSError):
            worker.popen.stdin.close()
    threading.Thread(target=worker.popen.wait, daemon=True).start()  # reap it


def _worker_env(executable: str) -> dict[str, str]:
    """The launcher's environment, with the executable's venv first on PATH (as Dagster does)."""
    env = dict(os.environ)
    bin_dir = str(Path(executable).parent)
    if Path(bin_dir, "activate").exists() and not env.get("PATH", "").startswith(bin_dir):
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    return env


def _worker_pid(run: DagsterRun) -> int | None:
    value = run.tags.get(RUN_WORKER_PID_TAG)
    return int(value) if value and value.isdigit() else None


def _is_run_worker(pid: int) -> bool:
    """Whether `pid` is alive and is one of this launcher's run workers (not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True  # no /proc (macOS): alive is what can be told
    return b"pysetl_dagster.launch.worker" in cmdline or b"execute_run" in cmdline
