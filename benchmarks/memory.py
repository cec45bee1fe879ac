"""Driver memory of one Factory's materialization at two input sizes (the larger >= 10x and
>= 1 GB of Parquet): nothing is collected to the driver, so its peak RSS should barely grow.

Generated input (Spark `range` + random columns, written as Parquet), then a Factory that reads
it, aggregates per key, joins the aggregate back and keeps a derived column: its output is as
large as its input. Each size is materialized with `materialize()` and the Parquet IO manager;
the figures are the materialization's own metadata: `pysetl/driver_peak_rss_mb` (the Python
process + the driver JVM, peak during the materialization) and
`spark/executor_peak_memory_mb`. In `local[2]` the executors run inside the driver JVM, so the
JVM part includes the executors' working memory. Everything generated is deleted afterwards.
The last line is one JSON object:
{"small_gb", "large_gb", "driver_rss_small_mb", "driver_rss_large_mb", ...}

With --connect, the same materializations run on a Spark Connect session: this process is the
run process and starts no JVM (pyspark's Connect server, `local[2]`, is started by the script
and holds the executors); it generates the input through that session, and the figures are
the run process's own peak RSS: {"small_gb", "large_gb", "run_rss_small_mb",
"run_rss_large_mb", "jvms_in_run_process"}.

    .venv/bin/python benchmarks/memory.py [--small-rows 4500000] [--factor 10] [--connect]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Self

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402
from pysetl.workflow import Factory, Pipeline, Stage  # noqa: E402
from pyspark.sql import DataFrame, SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from pysetl_dagster import PySparkSessionResource, SparkParquetIOManager, pysetl_pipeline  # noqa: E402
from pysetl_dagster.spark.memory import DriverMemory, driver_jvm_pid  # noqa: E402

SOURCE: dict[str, str] = {}


class Scored(Factory[DataFrame]):
    """Each event with its share of its key's total: a scan, a shuffle, a join, a big write."""

    def read(self) -> Self:
        spark = SparkSession.builder.getOrCreate()
        self.events = spark.read.parquet(SOURCE["path"])
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


def folder_gb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e9


def generate(spark: SparkSession, rows: int, path: Path) -> float:
    spark.range(rows).select(
        (F.col("id") % 100_000).alias("key"),
        F.rand(1).alias("a"),
        F.rand(2).alias("b"),
        F.randn(3).alias("c"),
    ).write.parquet(str(path))
    return folder_gb(path)


def materialize(work: Path, name: str, remote: str | None = None) -> dict[str, Any]:
    defs = pysetl_pipeline(Pipeline().add_stage(Stage().add_factory(Scored())), name=name)
    resources = {
        "pyspark": PySparkSessionResource(master="local[2]", stop_at_exit=False, remote=remote),
        "io_manager": SparkParquetIOManager(base_path=str(work / f"storage-{name}")),
    }
    result = dg.materialize(defs.assets, resources=resources)
    assert result.success
    (event,) = result.get_asset_materialization_events()
    meta = event.materialization.metadata
    return {k: getattr(v, "value", v) for k, v in meta.items()}


def main_connect(small_rows: int, factor: int) -> None:
    """The Connect row: this process is a JVM-less run process; the server does the work."""
    from benchmarks.overhead import java_children
    from pysetl_dagster.spark.connect_server import start_connect_server

    work = Path(tempfile.mkdtemp(prefix="pysetl-memory-connect-"))
    server = start_connect_server(
        work / "server", master="local[2]", conf={"spark.sql.shuffle.partitions": "16"}
    )
    result: dict[str, Any] = {}
    try:
        spark = SparkSession.builder.remote(server.url).create()
        for size, rows in (("small", small_rows), ("large", small_rows * factor)):
            source = work / f"events-{size}"
            gb = generate(spark, rows, source)
            SOURCE["path"] = str(source)
            meta = materialize(work, f"memory_{size}", remote=server.url)
            result[f"{size}_gb"] = round(gb, 3)
            result[f"run_rss_{size}_mb"] = meta.get("pysetl/driver_peak_rss_mb")
            result[f"rows_{size}"] = rows
            print(f"{size}: {gb:.3f} GB, {meta.get('pysetl/driver_peak_rss_mb')} MB", flush=True)
            shutil.rmtree(source, ignore_errors=True)
            shutil.rmtree(work / f"storage-memory_{size}", ignore_errors=True)
        # the server is this process's child too, but not part of the run
        result["jvms_in_run_process"] = java_children(exclude=frozenset({server.process.pid}))
        spark.stop()
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    small, large = result["run_rss_small_mb"], result["run_rss_large_mb"]
    result["growth_mb"] = round(large - small, 1) if small and large else None
    head = ["small_gb", "large_gb", "run_rss_small_mb", "run_rss_large_mb", "jvms_in_run_process"]
    print(json.dumps({k: v for k, v in result.items() if k not in head}))  # the details
    print(json.dumps({k: result[k] for k in head}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small-rows", type=int, default=4_500_000)
    parser.add_argument("--factor", type=int, default=10)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a cheap run (benchmarks/regression.py): --small-rows 200000 --factor 3",
    )
    parser.add_argument("--connect", action="store_true", help="the Spark Connect row")
    args = parser.parse_args()
    if args.quick:
        args.small_rows, args.factor = 200_000, 3
    if args.connect:
        main_connect(args.small_rows, args.factor)
        return
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.sql.shuffle.partitions", "16")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    work = Path(tempfile.mkdtemp(prefix="pysetl-memory-"))
    result: dict[str, Any] = {}
    try:
        for size, rows in (("small", args.small_rows), ("large", args.small_rows * args.factor)):
            source = work / f"events-{size}"
            gb = generate(spark, rows, source)
            SOURCE["path"] = str(source)
            jvm = driver_jvm_pid(spark)
            meta = materialize(work, f"memory_{size}")
            jvm_peak = DriverMemory([jvm]).peak_mb() if jvm else None  # since the step began
            result[f"{size}_gb"] = round(gb, 3)
            result[f"driver_rss_{size}_mb"] = meta.get("pysetl/driver_peak_rss_mb")
            result[f"jvm_rss_{size}_mb"] = round(jvm_peak, 1) if jvm_peak else None
            result[f"executor_peak_{size}_mb"] = meta.get("spark/executor_peak_memory_mb")
            result[f"rows_{size}"] = rows
            print(f"{size}: {gb:.3f} GB, {meta.get('pysetl/driver_peak_rss_mb')} MB", flush=True)
            shutil.rmtree(source, ignore_errors=True)
            shutil.rmtree(work / f"storage-memory_{size}", ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        spark.stop()
    small, large = result["driver_rss_small_mb"], result["driver_rss_large_mb"]
    result["growth_mb"] = round(large - small, 1) if small and large else None
    head = ["small_gb", "large_gb", "driver_rss_small_mb", "driver_rss_large_mb"]
    print(json.dumps({k: v for k, v in result.items() if k not in head}))  # the details
    print(json.dumps({k: result[k] for k in head}))


if __name__ == "__main__":
    main()
