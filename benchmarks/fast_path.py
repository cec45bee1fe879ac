"""In-run handover: does a consumer in the same run get its upstream faster from memory?

One process, one warm SparkSession, alternating rounds of `materialize()` of a three-asset
pipeline with the Parquet IO manager in each mode:
  stored - consumers read the published Parquet version back (`in_run_handover="stored"`);
  memory - the upstream output is persisted while it is stored and handed to its consumers
           (`in_run_handover="memory"`), released at the end of the run.
Upstream: generated events joined with a per-key aggregate of themselves (a scan, a shuffle,
a join); two consumers: a per-bucket aggregate and a filtered projection. Both modes compute
and store every output once. Also counts the scans of the stored upstream version per run
(`count_input_scans`). Last line: one JSON object (medians over the counted rounds).

    .venv/bin/python benchmarks/fast_path.py [--rows 3000000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Self

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402
from pysetl.workflow import Delivery, Factory, Pipeline, Stage  # noqa: E402
from pyspark.sql import DataFrame, SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from pysetl_dagster import PySparkSessionResource, SparkParquetIOManager, pysetl_pipeline  # noqa: E402
from pysetl_dagster.spark.labels import run_tag  # noqa: E402
from pysetl_dagster.spark.memory import count_input_scans  # noqa: E402

SOURCE: dict[str, str] = {}


class Upstream(Factory[DataFrame]):
    def read(self) -> Self:
        self.events = SparkSession.builder.getOrCreate().read.parquet(SOURCE["path"])
        return self

    def process(self) -> Self:
        totals = self.events.groupBy("key").agg(F.sum("a").alias("key_total"))
        self.out = self.events.join(totals, "key").withColumn(
            "share", F.col("a") / F.col("key_total")
        )
        return self

    def write(self) -> Self:
        return self

    def get(self) -> DataFrame:
        return self.out


class Buckets(Factory[DataFrame]):
    upstream = Delivery[DataFrame](producer=Upstream)

    def read(self) -> Self:
        self.src = self.upstream.get()
        return self

    def process(self) -> Self:
        self.out = self.src.groupBy((F.col("key") % 100).alias("bucket")).agg(
            F.avg("share").alias("avg_share"), F.count("*").alias("n")
        )
        return self

    def write(self) -> Self:
        return self

    def get(self) -> DataFrame:
        return self.out


class Large(Factory[DataFrame]):
    upstream = Delivery[DataFrame](producer=Upstream)

    def read(self) -> Self:
        self.src = self.upstream.get()
        return self

    def process(self) -> Self:
        self.out = self.src.where(F.col("b") > 0.5).select("key", "a", "share")
        return self

    def write(self) -> Self:
        return self

    def get(self) -> DataFrame:
        return self.out


def run_once(work: Path, mode: str, round_: int) -> tuple[float, int]:
    pipeline = (
        Pipeline()
        .add_stage(Stage().add_factory(Upstream()))
        .add_stage(Stage().add_factory(Buckets()).add_factory(Large()))
    )
    defs = pysetl_pipeline(pipeline, name=f"fast_path_{mode}_{round_}")
    storage = work / f"storage-{mode}-{round_}"
    io = SparkParquetIOManager(base_path=str(storage), in_run_handover=mode)  # type: ignore[arg-type]
    resources = {
        "pyspark": PySparkSessionResource(master="local[2]", stop_at_exit=False),
        "io_manager": io,
    }
    start = time.perf_counter()
    result = dg.materialize(defs.assets, resources=resources)
    seconds = time.perf_counter() - start
    assert result.success
    version = io.current_version_path(dg.AssetKey("upstream")).name
    spark = SparkSession.builder.getOrCreate()
    scans = count_input_scans(spark, version, run_tag(result.run_id))
    shutil.rmtree(storage, ignore_errors=True)
    return seconds, scans


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a cheap run (benchmarks/regression.py): --rows 100000 --rounds 1",
    )
    args = parser.parse_args()
    if args.quick:
        args.rows, args.rounds = 100_000, 1
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.maxMetadataStringLength", "10000")  # full paths: count_input_scans
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    work = Path(tempfile.mkdtemp(prefix="fast-path-"))
    modes = ["stored", "memory"]
    times: dict[str, list[float]] = {m: [] for m in modes}
    scans: dict[str, int] = {}
    try:
        source = work / "events"
        spark.range(args.rows).select(
            (F.col("id") % 50_000).alias("key"), F.rand(1).alias("a"), F.rand(2).alias("b")
        ).write.parquet(str(source))
        SOURCE["path"] = str(source)
        for round_ in range(args.rounds + 1):
            for mode in modes if round_ % 2 == 0 else modes[::-1]:
                seconds, scanned = run_once(work, mode, round_)
                if round_ > 0:  # round 0 warms up
                    times[mode].append(seconds)
                scans[mode] = scanned
                print(f"round {round_} {mode}: {seconds:.2f} s, stored-version scans {scanned}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        spark.stop()
    result: dict[str, Any] = {f"{m}_s": round(statistics.median(times[m]), 3) for m in modes}
    result["memory_vs_stored"] = round(result["memory_s"] / result["stored_s"], 3)
    result.update({f"{m}_upstream_scans": scans[m] for m in modes})
    result.update({"rows": args.rows, "rounds": args.rounds})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
