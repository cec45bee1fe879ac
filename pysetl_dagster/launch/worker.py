"""A run worker started before its run: imports first, then waits for the run to execute.

Started by `WarmRunLauncher` as ``python -m pysetl_dagster.launch.worker --preload a,b,c``. It
imports the preload modules (Dagster, Spark's client, pandas, this library: what every run
process imports before it can do anything), writes nothing, and blocks on one line of standard
input: the serialized `ExecuteRunArgs` of the run it is given. It then becomes exactly
``dagster api execute_run <args>`` (Dagster's own run worker command, called in this process),
so the run's events, status, interrupts and exit code are Dagster's.

What it deliberately does not import ahead is the code location: the user's modules are
imported when the run starts, as in a fresh process, so an edit made while the worker waited is
seen. If a module it did import ahead changed on disk while it waited (a library upgraded or
edited), it does not run stale code: it replaces itself (`os.execv`) with a fresh
``dagster api execute_run`` of the same run. Standard input closing without a line (the
launcher's process ended) makes it exit quietly.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Sequence

DEFAULT_PRELOAD: tuple[str, ...] = (
    "dagster",
    "dagster._cli",
    "dagster._core.execution.api",
    "pandas",
    "pyspark.sql",
    "pyspark.sql.connect.session",
    "pandera",
    "pandera.pyspark",
    "pysetl",
    "pysetl_dagster",
    "pysetl_dagster.defs.build",
    "pysetl_dagster.execution.step",
    "pysetl_dagster.storage.io_manager",
    "pysetl_dagster.spark.resource",
)
"""What a run of a PySetl pipeline imports before its first step; missing ones are skipped."""

Stamp = tuple[int, int]


def preload(modules: Sequence[str]) -> dict[str, Stamp]:
    """Import `modules` (skipping those not installed); the files then loaded and their stamps."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
    return module_files()


def module_files() -> dict[str, Stamp]:
    """Every loaded module's source or bytecode file, with its modification time and size."""
    stamps: dict[str, Stamp] = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not isinstance(path, str):
            continue
        try:
            stat = os.stat(path)
        except OSError:
            continue
        stamps[path] = (stat.st_mtime_ns, stat.st_size)
    return stamps


def changed_files(stamps: dict[str, Stamp]) -> list[str]:
    """The files among `stamps` that changed or vanished since they were stamped."""
    changed = []
    for path, stamp in stamps.items():
        try:
            stat = os.stat(path)
        except OSError:
            changed.append(path)
            continue
        if (stat.st_mtime_ns, stat.st_size) != stamp:
            changed.append(path)
    return changed


def execute_run(input_json: str) -> None:
    """Become ``dagster api execute_run <input_json>``: Dagster's own command, in this process."""
    from dagster._cli import main as dagster_main

    sys.argv = ["dagster", "api", "execute_run", input_json]
    dagster_main()  # type: ignore[no-untyped-call]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--preload", default=",".join(DEFAULT_PRELOAD))
    parser.add_argument("--ready-fd", type=int, help="a pipe to write 'ready' on once imported")
    args = parser.parse_args(argv)
    # Ctrl-C in `dagster dev` reaches the whole process group: a waiting worker has no run to
    # interrupt, and ends anyway when the launcher's process ends (its standard input closes)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stamps = preload([m for m in args.preload.split(",") if m])
    if args.ready_fd is not None:
        try:
            os.write(args.ready_fd, b"ready\n")
            os.close(args.ready_fd)
        except OSError:
            pass  # the launcher stopped listening: it still hands the run on standard input
    line = sys.stdin.readline()
    if not line.strip():
        return 0  # the launcher went away before giving a run
    input_json = line.strip()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # the run's, as in any run worker
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, sys.stdin.fileno())  # the run reads nothing from the launcher's pipe
    os.close(devnull)
    if changed_files(stamps):
        # a preloaded module changed while this worker waited: run the run in a fresh interpreter
        os.execv(
            sys.executable, [sys.executable, "-m", "dagster", "api", "execute_run", input_json]
        )
    execute_run(input_json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
