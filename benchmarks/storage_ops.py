"""The cost of storage bookkeeping through Spark's Hadoop FileSystem API (py4j), per call.

Times, on one warm SparkSession, the metadata operations a materialization does besides
Spark's own write: `current_manifest` (read on every load), `publish` (record, manifest switch,
lease release, prune) and `list_versions`, for a local path root and a `file://` root. The
Parquet write itself is not timed (it is Spark's). The last line printed is one JSON object:
{"<root kind>_<op>_ms": median, ...}.

    .venv/bin/python benchmarks/storage_ops.py [--rounds 20] [--keep 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402

from pysetl_dagster import SparkParquetIOManager  # noqa: E402


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def measure(spark: SparkSession, base: str, rounds: int, keep: int) -> dict[str, float]:
    io = SparkParquetIOManager(base_path=base, keep_versions=keep)
    key = dg.AssetKey("bench")
    location = io.asset_dir(key)
    df = spark.range(10).withColumnRenamed("id", "value")
    times: dict[str, list[float]] = {"publish": [], "manifest": [], "list_versions": []}
    for i in range(rounds):
        stored = io.write_version(key, location, df, run_id=f"r{i}")
        start = time.perf_counter()
        io.publish(stored, f"r{i}", extra={"cache_key": str(i)})
        times["publish"].append(_ms(start))
        start = time.perf_counter()
        io.current_manifest(key)
        times["manifest"].append(_ms(start))
        start = time.perf_counter()
        io.list_versions(key)
        times["list_versions"].append(_ms(start))
    return {op: round(statistics.median(values), 2) for op, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--keep", type=int, default=2)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a cheap run (benchmarks/regression.py): --rounds 5",
    )
    args = parser.parse_args()
    if args.quick:
        args.rounds = 5
    spark = (
        SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false").getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    result: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, base in (("path", f"{tmp}/a"), ("file_uri", Path(tmp, "b").as_uri())):
            for op, value in measure(spark, base, args.rounds, args.keep).items():
                result[f"{kind}_{op}_ms"] = value
    print(json.dumps(result))


if __name__ == "__main__":
    main()
