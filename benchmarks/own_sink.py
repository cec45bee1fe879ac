"""A Factory that writes its own sink: three ways to write that sink and the stored version.

Plain Spark, the same operations the Factory step would run, alternating in one process:
  twice       - the sink written, then the stored version written: the lineage runs twice;
  persist     - the output persisted (MEMORY_AND_DISK), both written, then unpersisted;
  store_first - the stored version written, then the sink written from it read back.
The Factory: generated orders (Parquet), joined with a per-customer aggregate of themselves,
so its lineage is a scan, a shuffle and a join. Also counts the scans of the input per way
(`pysetl_dagster.memory.count_input_scans`), and, through the library (`sink_input_scans`: one
cold materialization of a Factory saving through a `SparkRepository`), the scans of its input.
Last line: one JSON object with the medians.

    .venv/bin/python benchmarks/own_sink.py [--rows 4000000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Self

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402
from pysetl.config import ParquetConfig  # noqa: E402
from pysetl.enums import SaveMode  # noqa: E402
from pysetl.storage.repository import SparkRepositoryBuilder  # noqa: E402
from pysetl.workflow import Factory, Pipeline, Stage  # noqa: E402
from pyspark import StorageLevel  # noqa: E402
from pyspark.sql import DataFrame, SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402
from pyspark.sql.types import DoubleType, LongType  # noqa: E402
from typedspark import Column, DataSet, Schema  # noqa: E402

from pysetl_dagster import PySparkSessionResource, SparkParquetIOManager, pysetl_pipeline  # noqa: E402
from pysetl_dagster.spark.labels import run_tag  # noqa: E402
from pysetl_dagster.spark.memory import count_input_scans  # noqa: E402


def lineage(spark: SparkSession, source: Path) -> DataFrame:
    orders = spark.read.parquet(str(source))
    per_customer = orders.groupBy("customer").agg(
        F.sum("amount").alias("customer_total"), F.count("*").alias("customer_orders")
    )
    return orders.join(per_customer, "customer").withColumn(
        "share", F.col("amount") / F.col("customer_total")
    )


def one_way(spark: SparkSession, way: str, source: Path, out: Path) -> tuple[float, int]:
    tag = f"own-sink-{way}-{uuid.uuid4().hex[:6]}"
    sink, store = out / f"sink-{tag}", out / f"store-{tag}"
    spark.sparkContext.addJobTag(tag)
    start = time.perf_counter()
    try:
        df = lineage(spark, source)
        if way == "twice":
            df.write.parquet(str(sink))
            df.write.parquet(str(store))
        elif way == "persist":
            df = df.persist(StorageLevel.MEMORY_AND_DISK)
            try:
                df.write.parquet(str(sink))
                df.write.parquet(str(store))
            finally:
                df.unpersist()
        else:
            df.write.parquet(str(store))
            spark.read.schema(df.schema).parquet(str(store)).write.parquet(str(sink))
        seconds = time.perf_counter() - start
    finally:
        spark.sparkContext.removeJobTag(tag)
    scans = count_input_scans(spark, source.name, tag)
    shutil.rmtree(sink, ignore_errors=True)
    shutil.rmtree(store, ignore_errors=True)
    return seconds, scans


class _Totals(Schema):
    customer: Column[LongType]
    total: Column[DoubleType]


_SINK: dict[str, str] = {}


class SinkedTotals(Factory[DataSet[_Totals]]):
    """Totals per customer, saved by the Factory itself through PySetl's SparkRepository."""

    def read(self) -> Self:
        self.orders = SparkSession.builder.getOrCreate().read.parquet(_SINK["input"])
        return self

    def process(self) -> Self:
        totals = self.orders.groupBy("customer").agg(F.sum("amount").alias("total"))
        self.output = DataSet[_Totals](totals)
        return self

    def write(self) -> Self:
        config = ParquetConfig(storage="PARQUET", path=_SINK["sink"], savemode=SaveMode.OVERWRITE)
        SparkRepositoryBuilder[_Totals](config).build().get().save(self.output)
        return self

    def get(self) -> DataSet[_Totals]:
        return self.output


def sink_input_scans(spark: SparkSession, rows: int = 200_000) -> int:
    """Scans of a Factory's input during one cold materialization through the library, the
    Factory saving its output through a `SparkRepository` too (the issue asks for 1). Needs
    `spark.sql.maxMetadataStringLength` raised on the session (full paths in plans)."""
    work = Path(tempfile.mkdtemp(prefix="sink-scans-"))
    try:
        source = work / "orders_input"
        spark.range(rows).select(
            (F.col("id") % 1000).alias("customer"), F.rand(1).alias("amount")
        ).write.parquet(str(source))
        _SINK.update(input=str(source), sink=str(work / "sink"))
        pipeline = Pipeline().add_stage(Stage().add_factory(SinkedTotals()))
        defs = pysetl_pipeline(pipeline, name="sink")
        resources = {
            "pyspark": PySparkSessionResource(master="local[2]", stop_at_exit=False),
            "io_manager": SparkParquetIOManager(base_path=str(work / "storage")),
        }
        result = dg.materialize(defs.assets, resources=resources)
        return count_input_scans(spark, source.name, run_tag(result.run_id))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=4_000_000)
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
    work = Path(tempfile.mkdtemp(prefix="own-sink-"))
    try:
        source = work / "orders_input"
        spark.range(args.rows).select(
            (F.col("id") % 50_000).alias("customer"),
            (F.rand(1) * 100).alias("amount"),
            F.concat(F.lit("order-"), F.col("id").cast("string")).alias("label"),
        ).write.parquet(str(source))
        ways = ["twice", "persist", "store_first"]
        times: dict[str, list[float]] = {w: [] for w in ways}
        scans: dict[str, int] = {}
        for round_ in range(args.rounds + 1):
            order = ways if round_ % 2 == 0 else ways[::-1]
            for way in order:
                seconds, scanned = one_way(spark, way, source, work)
                if round_ > 0:  # round 0 warms up
                    times[way].append(seconds)
                scans[way] = scanned
                print(f"round {round_} {way}: {seconds:.2f} s, input scans {scanned}", flush=True)
        result = {f"{w}_s": round(statistics.median(times[w]), 3) for w in ways}
        result["persist_vs_store_first"] = round(result["persist_s"] / result["store_first_s"], 3)
        result.update({f"{w}_input_scans": scans[w] for w in ways})
        result.update({"rows": args.rows, "rounds": args.rounds})
        result["library_sink_input_scans"] = sink_input_scans(spark)
        print(json.dumps(result))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        spark.stop()


if __name__ == "__main__":
    main()
