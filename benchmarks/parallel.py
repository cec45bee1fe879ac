"""A Stage of independent Factories: PySetl runs them one after another, the Stage job at once.

One Stage of 4 independent Factories; each reads its own Parquet input of 2M rows, joins it
with a small dimension (broadcast) and aggregates it. In one process with one warm
SparkSession (`local[<cores>]`, FAIR scheduler), alternately each round:
  native  - PySetl's own `Pipeline.run()` (its Stage runs the Factories one after another),
            then each Factory's output written to Parquet by this script (PySetl is lazy: the
            writes run the Factories' Spark work, one Factory after another);
  dagster - the pipeline's Stage job (`execute_in_process`), its 4 Factories on threads over
            the session, each in its FAIR pool (`max_concurrent_factories=4`), each output
            written to fresh storage with the cache off;
  dagster_sequential - the same with `max_concurrent_factories=1` (one Factory after another):
            `dagster_s / dagster_sequential_s` is what running them at once gains, apart from
            the work Dagster adds per Factory (storage, checks, metrics).
Two rows, same data, same session settings for both sides:
  one_core_each   - each input is one file (one partition) and shuffles have one partition:
                    one Factory keeps one core busy, so running them at once can use every
                    core (the limit on 2 cores is a ratio of 0.5);
  fills_every_core - each input is `cores` files and shuffles have `cores` partitions: one
                    Factory alone keeps every core busy, so parallelism cannot win (ratio ~1).
Medians over the counted rounds (round 0 warms up). One JSON line per row (with
"dagster_sequential_s"); the last line repeats the one-core-each row with the issue's keys only:
{"native_s", "dagster_s", "ratio" (dagster/native), "cores"}.

    .venv/bin/python benchmarks/parallel.py [--rows 2000000] [--rounds 3] [--cores 2]
        [--only one_core_each|fills_every_core] [--breakdown]

`--breakdown` (one_core_each, one Factory after another on both sides) says where Dagster's
extra time per Factory goes: per Factory, the native write's wall time and Spark jobs against
the Stage job's step (STEP_START to STEP_SUCCESS), the Factory's own run (`pysetl/*_s`), the
stored write (`pysetl/store_s`) and the Spark jobs and executor time Spark itself counted
under the step's label. Last line: the medians per Factory.
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
from typing import Any, ClassVar, Self

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402
from pysetl.workflow import Factory, Pipeline, Stage  # noqa: E402
from pyspark.sql import DataFrame, SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402
from pyspark.sql.types import DoubleType, LongType, StringType  # noqa: E402
from typedspark import Column, DataSet, Schema  # noqa: E402

from pysetl_dagster import PySparkSessionResource, SparkParquetIOManager, pysetl_pipeline  # noqa: E402
from pysetl_dagster.spark.labels import no_leaked_spark_labels, step_tag  # noqa: E402
from pysetl_dagster.spark.metrics import spark_jobs, spark_metrics  # noqa: E402

FACTORIES = 4
KEYS = 1000


class Totals(Schema):
    segment: Column[StringType]
    amount: Column[DoubleType]
    orders: Column[LongType]
    digest: Column[StringType]


class _Part(Factory[DataSet[Totals]]):
    """Its own input joined with the segment of each key, totals per segment."""

    index: ClassVar[int] = 0
    inputs: ClassVar[str] = ""

    def read(self) -> Self:
        spark = SparkSession.builder.getOrCreate()
        self.facts = spark.read.parquet(f"{self.inputs}/part{self.index}")
        self.segments = spark.range(KEYS).select(
            F.col("id").alias("key"), F.concat(F.lit("s"), (F.col("id") % 7)).alias("segment")
        )
        return self

    def process(self) -> Self:
        joined = self.facts.join(F.broadcast(self.segments), "key")
        self.out = DataSet[Totals](
            joined.groupBy("segment").agg(
                F.sum(F.col("value") * F.col("quantity")).alias("amount"),
                F.count("*").cast("long").alias("orders"),
                F.max(F.sha2(F.concat_ws("|", "key", "value", "quantity"), 256)).alias("digest"),
            )
        )
        return self

    def write(self) -> Self:
        return self

    def get(self) -> DataSet[Totals]:
        return self.out


class Part0(_Part):
    index = 0


class Part1(_Part):
    index = 1


class Part2(_Part):
    index = 2


class Part3(_Part):
    index = 3


PARTS: list[type[_Part]] = [Part0, Part1, Part2, Part3]


def build_pipeline() -> Pipeline:
    stage = Stage()
    for part in PARTS:
        stage.add_factory(part())
    return Pipeline().add_stage(stage)


def ensure_inputs(spark: SparkSession, rows: int, files: int) -> Path:
    """`FACTORIES` inputs of `rows` rows, each written as `files` Parquet files."""
    folder = ROOT / "benchmarks" / ".data" / f"parallel_{rows}_{files}"
    if (folder / "_complete").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    for i in range(FACTORIES):
        facts: DataFrame = spark.range(rows, numPartitions=files).select(
            (F.col("id") * 7919 % KEYS).alias("key"),
            (F.col("id") % 997 / 10 + i).alias("value"),
            (F.col("id") % 13 + 1).alias("quantity"),
        )
        facts.write.parquet(str(folder / f"part{i}"))
    (folder / "_complete").touch()
    return folder


def run_native(spark: SparkSession, out: Path) -> float:
    start = time.perf_counter()
    with no_leaked_spark_labels(spark):  # PySetl's job group must not label later jobs
        pipeline = build_pipeline().run()
    for part in PARTS:
        output = pipeline.get_output(part)
        assert output is not None, part
        output.write.parquet(str(out / part.__name__))
    return time.perf_counter() - start


def run_dagster(
    out: Path, instance: dg.DagsterInstance, conf: dict[str, Any], concurrent: int = FACTORIES
) -> float:
    start = time.perf_counter()
    job = pysetl_pipeline(build_pipeline(), name="parallel_bench").stage_job
    assert job is not None
    result = job.execute_in_process(
        instance=instance,
        resources={
            "pyspark": PySparkSessionResource(
                stop_at_exit=False, spark_config=conf, max_concurrent_factories=concurrent
            ),
            "io_manager": SparkParquetIOManager(base_path=str(out), cache=False),
        },
    )
    elapsed = time.perf_counter() - start
    assert result.success
    return elapsed


def measure(
    spark: SparkSession, inputs: Path, shuffle: int, rounds: int, label: str
) -> dict[str, Any]:
    conf = {"spark.sql.shuffle.partitions": str(shuffle)}
    spark.conf.set("spark.sql.shuffle.partitions", str(shuffle))
    _Part.inputs = str(inputs)
    native_s: list[float] = []
    dagster_s: list[float] = []
    sequential_s: list[float] = []
    with (
        tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp,
        dg.DagsterInstance.local_temp(tmp) as instance,
    ):
        for round_ in range(rounds + 1):  # round 0 warms caches and JIT, not counted
            native = run_native(spark, Path(tmp, f"native_{round_}"))
            dagster = run_dagster(Path(tmp, f"dagster_{round_}"), instance, conf)
            sequential = run_dagster(Path(tmp, f"sequential_{round_}"), instance, conf, 1)
            print(f"{label} round {round_}: native {native:.2f}s  dagster {dagster:.2f}s  "
                  f"dagster_sequential {sequential:.2f}s"
                  + ("  (warm-up)" if round_ == 0 else ""), flush=True)  # fmt: skip
            if round_:
                native_s.append(native)
                dagster_s.append(dagster)
                sequential_s.append(sequential)
    n, d = statistics.median(native_s), statistics.median(dagster_s)
    s = statistics.median(sequential_s)
    return {"native_s": round(n, 3), "dagster_s": round(d, 3), "ratio": round(d / n, 3),
            "dagster_sequential_s": round(s, 3)}  # fmt: skip


def native_breakdown(spark: SparkSession, out: Path, round_: int) -> list[dict[str, float]]:
    """PySetl's run, then each Factory's write timed alone, its Spark work counted by tag."""
    with no_leaked_spark_labels(spark):
        pipeline = build_pipeline().run()
    rows = []
    for part in PARTS:
        output = pipeline.get_output(part)
        assert output is not None, part
        tag = f"bench-native-{round_}-{part.__name__}"
        spark.sparkContext.addJobTag(tag)  # the SparkContext's tag, as the step's labels are
        try:
            start = time.perf_counter()
            output.write.parquet(str(out / part.__name__))
            wall = time.perf_counter() - start
        finally:
            spark.sparkContext.removeJobTag(tag)
        metrics = spark_metrics(spark, tag)
        executor_s = metrics.get("spark/executor_run_time_ms", 0) / 1000
        jobs = metrics.get("spark/jobs", 0)
        rows.append({"wall_s": wall, "jobs": jobs, "executor_s": executor_s})
    return rows


def dagster_breakdown(
    spark: SparkSession, out: Path, instance: dg.DagsterInstance, conf: dict[str, Any]
) -> list[dict[str, Any]]:
    """The Stage job one Factory after another; per step its events' and metadata's times."""
    job = pysetl_pipeline(build_pipeline(), name="parallel_bench").stage_job
    assert job is not None
    start = time.perf_counter()
    result = job.execute_in_process(
        instance=instance,
        resources={
            "pyspark": PySparkSessionResource(
                stop_at_exit=False, spark_config=conf, max_concurrent_factories=1
            ),
            "io_manager": SparkParquetIOManager(base_path=str(out), cache=False),
        },
    )
    job_s = time.perf_counter() - start
    assert result.success
    events = result.all_events
    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    for record in instance.all_logs(result.run_id):
        event = record.dagster_event
        if event is None or record.step_key is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            starts[record.step_key] = record.timestamp
        elif event.event_type == dg.DagsterEventType.STEP_SUCCESS:
            ends[record.step_key] = record.timestamp
    rows = []
    for event in events:
        if event.event_type != dg.DagsterEventType.ASSET_MATERIALIZATION:
            continue
        materialization = event.step_materialization_data.materialization
        meta = {k: v.value for k, v in materialization.metadata.items()}
        step = event.step_key or ""
        factories = sum(
            1 for e in events if e.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION
        )
        # the Stage job is one op for the Stage: its duration shared by its Factories
        row: dict[str, Any] = {
            "job_share_s": job_s / factories,  # the whole execute_in_process, per Factory
            "stage_step_share_s": (ends.get(step, 0.0) - starts.get(step, 0.0)) / factories,
        }
        asset = materialization.asset_key.to_user_string()
        row["job_names"] = [
            (job.description or "?")[:60]
            for job in spark_jobs(spark, step_tag(result.run_id, asset))
        ]
        for key in ("pysetl/read_s", "pysetl/process_s", "pysetl/write_s", "pysetl/store_s",
                    "pysetl/checks_s", "spark/jobs"):  # fmt: skip
            if isinstance(meta.get(key), int | float):
                row[key.split("/")[1]] = float(meta[key])  # type: ignore[arg-type]
        if isinstance(meta.get("spark/executor_run_time_ms"), int | float):
            row["executor_s"] = float(meta["spark/executor_run_time_ms"]) / 1000  # type: ignore[arg-type]
        rows.append(row)
    return rows


def breakdown(spark: SparkSession, inputs: Path, rounds: int) -> None:
    conf = {"spark.sql.shuffle.partitions": "1"}
    spark.conf.set("spark.sql.shuffle.partitions", "1")
    _Part.inputs = str(inputs)
    native: list[dict[str, float]] = []
    dagster: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp,
        dg.DagsterInstance.local_temp(tmp) as instance,
    ):
        for round_ in range(rounds + 1):  # round 0 warms caches and JIT, not counted
            n = native_breakdown(spark, Path(tmp, f"native_{round_}"), round_)
            d = dagster_breakdown(spark, Path(tmp, f"dagster_{round_}"), instance, conf)
            print(f"breakdown round {round_}: native {json.dumps(n)}", flush=True)
            print(f"breakdown round {round_}: dagster {json.dumps(d)}", flush=True)
            if round_:
                native += n
                dagster += d

    def medians(rows: list[dict[str, Any]]) -> dict[str, float]:
        keys = sorted({k for r in rows for k in r if isinstance(r[k], int | float)})
        return {k: round(statistics.median(r[k] for r in rows if k in r), 3) for k in keys}

    print(json.dumps({"per_factory_native": medians(native),
                      "per_factory_dagster": medians(dagster)}))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a cheap run (benchmarks/regression.py): --rows 100000 --rounds 1",
    )
    parser.add_argument("--only", choices=["one_core_each", "fills_every_core"])
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="where Dagster's extra time per Factory goes (one_core_each, sequential)",
    )
    args = parser.parse_args()
    if args.quick:
        args.rows, args.rounds = 100_000, 1

    spark = (
        SparkSession.builder.master(f"local[{args.cores}]")
        .config("spark.scheduler.mode", "FAIR")  # what PySparkSessionResource sets
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    if args.breakdown:
        breakdown(spark, ensure_inputs(spark, args.rows, 1), args.rounds)
        return
    if args.only != "one_core_each":
        split = ensure_inputs(spark, args.rows, args.cores)
        fills = measure(spark, split, args.cores, args.rounds, "fills_every_core")
        print(json.dumps({"row": "fills_every_core", **fills, "cores": args.cores}), flush=True)
    if args.only != "fills_every_core":
        one_file = ensure_inputs(spark, args.rows, 1)
        one = measure(spark, one_file, 1, args.rounds, "one_core_each")
        print(json.dumps({"row": "one_core_each", **one, "cores": args.cores}), flush=True)
        keys = ("native_s", "dagster_s", "ratio")
        print(json.dumps({**{k: one[k] for k in keys}, "cores": args.cores}))


if __name__ == "__main__":
    main()
