"""Branching sensors: ticks over a scripted sequence of upstream versions and config values,
against a ground truth of which branch should run (issue 20).

Two sensors on one code location, fresh storage, the cache off:

- `gate_branching` (data conditions on `numbers`: ManyDoubled when it has >= 3 rows,
  FewDoubled for 1-2 rows, nothing for 0 rows), decided from the manifest (the aggregates were
  recorded during the write of `numbers`);
- `flagged_branching` (a branch on the flag `incremental`, the sensor's flag, a callable).

For each scripted step a new `numbers` version is written (materialized for real), the flag set,
and each sensor ticks with a fresh cursor. Spark jobs are counted from the SparkContext's status
tracker during the ticks. Then, side by side, the same tick after the recorded aggregates are
removed from the manifest (the one-aggregate fallback). The last line is the JSON the issue
names.

    .venv/bin/python benchmarks/branch_sensor.py [--steps 0 5 1 0 7 2 3 0]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dagster as dg
from pyspark.sql import SparkSession

from pysetl_dagster import (
    PySparkSessionResource,
    SparkParquetIOManager,
    build_definitions,
    pysetl_pipeline,
)
from tests.fixtures.branching_location import build_pipelines
from tests.fixtures.conditions_pipeline import build_branch_pipeline


def truth(n: int, incremental: bool) -> dict[str, Any]:
    """Which Factories should run for a `numbers` version of n rows and the flag."""
    gate = ["many_doubled"] if n >= 3 else ["few_doubled"] if n >= 1 else []
    branch = "IncrementalDoubled" if incremental else "FullDoubled"
    return {"gate": gate, "branch": branch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, nargs="+", default=[0, 5, 1, 0, 7, 2, 3, 0])
    parser.add_argument(
        "--quick", action="store_true", help="a cheap run (benchmarks/regression.py): --steps 0 5 1"
    )
    args = parser.parse_args()
    if args.quick:
        args.steps = [0, 5, 1]
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    state = {"incremental": False}
    gate = build_pipelines()[0]
    flagged = pysetl_pipeline(build_branch_pipeline(), name="flagged")
    flagged.branch_sensor(flags={"incremental": lambda: state["incremental"]})
    tracker = spark.sparkContext.statusTracker()
    with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test(temp_dir=tmp) as instance:
        defs = build_definitions(
            gate,
            flagged,
            resources={
                "pyspark": PySparkSessionResource(master="local[2]", stop_at_exit=False),
                "io_manager": SparkParquetIOManager(base_path=f"{tmp}/storage", cache=False),
            },
        )
        repo = defs.get_repository_def()
        job = defs.resolve_job_def("gate_assets")
        ticks, correct, runs_when_all_false, manifest_jobs = 0, 0, 0, 0
        tick_s: list[float] = []
        for i, n in enumerate(args.steps):
            state["incremental"] = i % 2 == 1
            assert job.execute_in_process(
                asset_selection=[dg.AssetKey("numbers")],
                run_config={"ops": {"numbers": {"config": {"n": n}}}},
                instance=instance,
            ).success
            expected = truth(n, state["incremental"])
            for name in ("gate_branching", "flagged_branching"):
                jobs_before = len(tracker.getJobIdsForGroup(None))
                with dg.build_sensor_context(instance=instance, repository_def=repo) as context:
                    start = time.perf_counter()
                    result = repo.get_sensor_def(name).evaluate_tick(context)
                    tick_s.append(time.perf_counter() - start)
                jobs = len(tracker.getJobIdsForGroup(None)) - jobs_before
                ticks += 1
                requests = result.run_requests or []
                if name == "gate_branching":
                    manifest_jobs += jobs
                    chosen = sorted(
                        k.to_user_string() for r in requests for k in r.asset_selection or []
                    )
                    correct += chosen == expected["gate"]
                    runs_when_all_false += len(requests) if not expected["gate"] else 0
                else:
                    taken = requests[0].tags["pysetl/branch_taken"] if requests else ""
                    correct += taken == f"DoubledBranch -> {expected['branch']}"
            print(
                json.dumps({"step": i, "rows": n, "incremental": state["incremental"]}), flush=True
            )
        # side by side: the same decision without the recorded aggregate (a version written
        # before the condition existed): one Spark aggregate per data condition
        manifest_path = Path(tmp, "storage", "numbers", "_current.json")
        manifest = json.loads(manifest_path.read_text())
        manifest.pop("aggregates", None)
        manifest_path.write_text(json.dumps(manifest))
        fallback_s, fallback_jobs = [], 0
        for _ in range(5):
            jobs_before = len(tracker.getJobIdsForGroup(None))
            with dg.build_sensor_context(instance=instance, repository_def=repo) as context:
                start = time.perf_counter()
                repo.get_sensor_def("gate_branching").evaluate_tick(context)
                fallback_s.append(time.perf_counter() - start)
            fallback_jobs += len(tracker.getJobIdsForGroup(None)) - jobs_before
        print(
            json.dumps(
                {
                    "fallback_tick_s_median": round(statistics.median(fallback_s), 4),
                    "fallback_spark_jobs_per_tick": fallback_jobs / 5,
                    "manifest_tick_s_median": round(statistics.median(tick_s), 4),
                }
            ),
            flush=True,
        )
    print(
        json.dumps(
            {
                "ticks": ticks,
                "decisions_correct": correct,
                "runs_when_all_false": runs_when_all_false,
                "tick_s_median": round(statistics.median(tick_s), 4),
                "spark_jobs_manifest_decisions": manifest_jobs,
            }
        )
    )


if __name__ == "__main__":
    main()
