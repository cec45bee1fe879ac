"""What one tick of the file sensor costs as the watched folder grows.

Creates N settled files in a temporary folder, then times, with a real temporary Dagster
instance: the first tick (every file is new: one run request), a steady tick (nothing new,
the cursor holds every file) and a tick with one new file among N. Prints the cursor's size
too (it keeps path -> size:mtime of every present file). One JSON object per size.

    .venv/bin/python benchmarks/sensors.py [--sizes 100 1000 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dagster as dg

from pysetl_dagster import build_definitions, pysetl_pipeline
from tests.fixtures.inbox_pipeline import build_inbox_pipeline


def _tick(sensor: dg.SensorDefinition, defs: dg.Definitions, instance: Any, cursor: Any) -> Any:
    context = dg.build_sensor_context(instance=instance, definitions=defs, cursor=cursor)
    return sensor.evaluate_tick(context)


def measure(n: int, repeat: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test() as instance:
        folder = Path(tmp, "inbox")
        folder.mkdir()
        then = time.time() - 60
        for i in range(n):
            path = folder / f"part-{i:06d}.csv"
            path.write_text("kind,amount\nx,1\n")
            os.utime(path, (then, then))
        pipeline = pysetl_pipeline(build_inbox_pipeline(folder), name="inbox")
        sensor = pipeline.on_new_files(folder, pattern="*.csv")
        defs = build_definitions(pipeline, storage_path=str(Path(tmp, "storage")))
        first_s, steady_s, one_new_s = [], [], []
        for r in range(repeat):
            start = time.perf_counter()
            first = _tick(sensor, defs, instance, None)
            first_s.append(time.perf_counter() - start)
            assert len(first.run_requests) == 1
            start = time.perf_counter()
            steady = _tick(sensor, defs, instance, first.cursor)
            steady_s.append(time.perf_counter() - start)
            assert not steady.run_requests
            new = folder / f"new-{r}.csv"
            new.write_text("kind,amount\ny,2\n")
            os.utime(new, (then, then))
            start = time.perf_counter()
            one = _tick(sensor, defs, instance, first.cursor)
            one_new_s.append(time.perf_counter() - start)
            assert json.loads(one.run_requests[0].tags["pysetl/new_files"]) == [new.name]
            new.unlink()
        return {
            "files": n,
            "first_tick_s": round(statistics.median(first_s), 4),
            "steady_tick_s": round(statistics.median(steady_s), 4),
            "one_new_file_tick_s": round(statistics.median(one_new_s), 4),
            "cursor_bytes": len(first.cursor or ""),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a cheap run (benchmarks/regression.py): --sizes 100 1000 --repeat 3",
    )
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.repeat = [100, 1000], 3
    for n in args.sizes:
        print(json.dumps(measure(n, args.repeat)), flush=True)


if __name__ == "__main__":
    main()
