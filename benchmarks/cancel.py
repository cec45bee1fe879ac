"""Terminating a long run: how fast its Spark job stops, and how the run ends.

Launches (GraphQL `launchRun`, default run launcher: the run is a subprocess of a code server,
as under `dagster dev`) a run whose Factory's Spark job takes at least `--seconds` (generated
rows through a slow Python UDF), terminates it through GraphQL `terminateRun` (what the UI's
Terminate button sends) `--after` seconds after the Spark job started, and asks the run
process's Spark REST API when no job tagged with the run is running any more. The last line
printed is one JSON object: {"cancel_s", "run_status", "spark_jobs_left"}.

    .venv/bin/python benchmarks/cancel.py [--seconds 120] [--after 10] [--no-watcher]
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures.slow_pipeline import launch_and_terminate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120, help="Spark work of the run")
    parser.add_argument("--after", type=float, default=10, help="terminate after this")
    parser.add_argument(
        "--no-watcher",
        action="store_true",
        help="without the resource's cancel-on-terminate watcher (Dagster's interrupt only)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a cheap run (benchmarks/regression.py): --seconds 20 --after 3",
    )
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.after = 20.0, 3.0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    with tempfile.TemporaryDirectory() as tmp:
        outcome = launch_and_terminate(
            Path(tmp, "home"), port, seconds=args.seconds, terminate_after=args.after,
            watch=not args.no_watcher,
        )  # fmt: skip
    print(f"run {outcome['run_id']}: Spark-related events: {outcome['logs']}", flush=True)
    print(json.dumps({k: outcome[k] for k in ("cancel_s", "run_status", "spark_jobs_left")}))


if __name__ == "__main__":
    main()
