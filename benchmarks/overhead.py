"""Dagster's overhead over plain PySetl on the example pipeline, measured side by side.

In one process with one warm SparkSession, alternately:
  native  - `build_pipeline(data).run()`, then each Factory's output written to Parquet by this
            script (the example's Factories' own `write()` is a no-op). PySetl hands lazy
            DataFrames downstream, so each write recomputes its whole lineage from the CSVs;
  native_persisted - PySetl's Stages and Dispatcher, each output written once and read back
            by its consumers: Dagster's work without Dagster (the pure-overhead baseline);
  dagster - `materialize()` of all the pipeline's assets (SQLite instance, in-process executor,
            the Parquet IO manager writes each output once);
  dagster_no_metrics - the same without Spark metrics per materialization and without the
            cancel-on-terminate watcher: `metrics_cost_s` = dagster - dagster_no_metrics.
  connect (with --connect) - the same `materialize()` on a Spark Connect session: a worker
            process with no JVM (a Connect client, `PySparkSessionResource(remote=...)`), on
            pyspark's Connect server (`local[2]`, the same settings) started by this script;
            each round's Connect materialization runs right after the classic one, on fresh
            storage (the cold data path), so the two are side by side.
Both compute and persist every Factory's output exactly once per round. Generated data (about a
million orders by default) makes Spark work dominate. The last line printed is one JSON object:
{"native_s", "dagster_s", "ratio" (dagster/native), "native_persisted_s",
"ratio_vs_persisted", "dagster_no_metrics_s", "metrics_cost_s", "jvms_per_run", ...}
(medians over the counted rounds), with --connect also "connect_dagster_s",
"connect_ratio" (connect_dagster_s / dagster_s) and "connect_jvms_in_run_process".

    .venv/bin/python benchmarks/overhead.py [--orders 1000000] [--rounds 3] [--connect]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402
from pysetl.workflow import Deliverable  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402

from definitions.retail.datagen import generate_data  # noqa: E402
from definitions.retail.pipeline import FACTORIES, build_pipeline  # noqa: E402
from pysetl_dagster import PySparkSessionResource, SparkParquetIOManager, pysetl_pipeline  # noqa: E402
from pysetl_dagster.spark.labels import no_leaked_spark_labels  # noqa: E402


def java_children(exclude: frozenset[int] = frozenset()) -> int:
    """JVMs started by this process (Spark's driver runs as a child `java` process), but for
    the pids in `exclude` (e.g. a Connect server this process started for the benchmark)."""
    me, count = os.getpid(), 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if comm == "java" and parent == me and int(pid) not in exclude:
            count += 1
    return count


def ensure_data(spark: SparkSession, orders: int) -> Path:
    data = ROOT / "benchmarks" / ".data" / f"orders_{orders}"
    if not (data / "_complete").exists():
        shutil.rmtree(data, ignore_errors=True)
        generate_data(spark, data, n_orders=orders, n_customers=max(1000, orders // 20),
                      n_products=max(100, orders // 1000))  # fmt: skip
        (data / "_complete").touch()
    return data


def run_native(data: Path, out: Path) -> float:
    spark = SparkSession.builder.getOrCreate()
    start = time.perf_counter()
    with no_leaked_spark_labels(spark):  # PySetl's job group must not label later jobs
        pipeline = build_pipeline(data).run()
    for factory in FACTORIES:
        output = pipeline.get_output(factory)
        assert output is not None, factory
        output.write.parquet(str(out / factory.__name__))
    return time.perf_counter() - start


def run_native_persisted(data: Path, out: Path) -> float:
    """PySetl's own Stages and Dispatcher, but each output is written once and downstream
    Factories read it back: the work Dagster does, without Dagster (pure orchestration cost)."""
    spark = SparkSession.builder.getOrCreate()
    start = time.perf_counter()
    pipeline = build_pipeline(data)
    dispatcher = pipeline.dispatcher
    for stage in pipeline.stages:
        for factory in stage.factories:
            dispatcher.dispatch(factory)
        for factory in stage.factories:
            factory.read().process().write()
            path = str(out / type(factory).__name__)
            output = factory.get()
            assert output is not None, factory
            output.write.parquet(path)
            output_type = factory.delivery_type().tp
            dispatcher.add_deliverable(
                Deliverable[output_type](  # type: ignore[valid-type]
                    output_type(spark.read.parquet(path)),
                    producer=type(factory), consumers=factory.consumers,
                    delivery_id=factory.delivery_id,
                )
            )  # fmt: skip
    return time.perf_counter() - start


def run_dagster(
    data: Path, out: Path, instance: dg.DagsterInstance, observe: bool = True
) -> tuple[float, set[str]]:
    """`observe=False` turns off what issue 8 added per run: the Spark metrics gathered for
    each materialization and the watcher that cancels Spark jobs when the run is terminated
    (the job labels stay: they are what cancellation and metrics rest on)."""
    start = time.perf_counter()
    assets = pysetl_pipeline(build_pipeline(data), name="retail").assets
    result = dg.materialize(
        assets,
        instance=instance,
        resources={
            "pyspark": PySparkSessionResource(stop_at_exit=False, cancel_on_terminate=observe),
            "io_manager": SparkParquetIOManager(base_path=str(out), spark_metrics=observe),
        },
    )
    elapsed = time.perf_counter() - start
    assert result.success
    app_ids = {
        str(e.materialization.metadata["spark/application_id"].value)
        for e in result.get_asset_materialization_events()
        if e.materialization
    }
    return elapsed, app_ids


def connect_worker(url: str, data: Path) -> None:
    """The Connect side: a process with no JVM that materializes the pipeline on the server at
    `url` once per line read from stdin (the storage folder), printing the seconds taken."""
    with (
        tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp,
        dg.DagsterInstance.local_temp(tmp) as instance,
    ):
        for line in sys.stdin:
            out = Path(line.strip())
            start = time.perf_counter()
            assets = pysetl_pipeline(build_pipeline(data), name="retail").assets
            result = dg.materialize(
                assets,
                instance=instance,
                resources={
                    "pyspark": PySparkSessionResource(remote=url),
                    "io_manager": SparkParquetIOManager(base_path=str(out)),
                },
            )
            elapsed = time.perf_counter() - start
            assert result.success
            print(json.dumps({"s": elapsed, "jvms": java_children()}), flush=True)


class ConnectSide:
    """The Connect server and the worker process, alive for the whole benchmark."""

    def __init__(self, data: Path, log_dir: Path) -> None:
        import subprocess

        from pysetl_dagster.spark.connect_server import start_connect_server

        self.server = start_connect_server(
            log_dir,
            master="local[2]",
            conf={
                "spark.sql.shuffle.partitions": "8",
                "spark.ui.showConsoleProgress": "false",
            },
        )
        self.worker = subprocess.Popen(
            [sys.executable, __file__, "--connect-worker", self.server.url, "--data", str(data)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, out: Path) -> tuple[float, int]:
        assert self.worker.stdin is not None and self.worker.stdout is not None
        self.worker.stdin.write(f"{out}\n")
        self.worker.stdin.flush()
        for line in self.worker.stdout:
            if line.startswith("{"):
                answer = json.loads(line)
                return float(answer["s"]), int(answer["jvms"])
        raise RuntimeError("the Connect worker exited")

    def close(self) -> None:
        if self.worker.stdin is not None:
            self.worker.stdin.close()
        self.worker.wait(60)
        self.server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a cheap run (benchmarks/regression.py): --orders 5000 --rounds 1",
    )
    parser.add_argument("--connect", action="store_true", help="add the Spark Connect column")
    parser.add_argument("--connect-worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.orders, args.rounds = 5_000, 1
    if args.connect_worker:
        connect_worker(args.connect_worker, Path(args.data))
        return

    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    data = ensure_data(spark, args.orders)
    native_s: list[float] = []
    persisted_s: list[float] = []
    dagster_s: list[float] = []
    bare_s: list[float] = []
    connect_s: list[float] = []
    connect_jvms: set[int] = set()
    app_ids: set[str] = set()
    jvms: set[int] = set()
    with (
        tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp,
        dg.DagsterInstance.local_temp(tmp) as instance,
    ):
        side = ConnectSide(data, Path(tmp, "connect-server")) if args.connect else None
        try:
            for round_ in range(args.rounds + 1):  # round 0 warms caches and JIT, not counted
                native = run_native(data, Path(tmp, f"native_{round_}"))
                persisted = run_native_persisted(data, Path(tmp, f"persisted_{round_}"))
                bare, _ = run_dagster(data, Path(tmp, f"bare_{round_}"), instance, observe=False)
                dagster, ids = run_dagster(data, Path(tmp, f"dagster_{round_}"), instance)
                app_ids |= ids
                # the benchmark's own Connect server is this process's child, not the run's
                jvms.add(
                    java_children(frozenset({side.server.process.pid}) if side else frozenset())
                )
                connect, connect_jvm = (
                    side.run(Path(tmp, f"connect_{round_}")) if side else (float("nan"), 0)
                )
                connect_jvms.add(connect_jvm)
                print(f"round {round_}: native {native:.2f}s  native_persisted {persisted:.2f}s  "
                      f"dagster {dagster:.2f}s  dagster_no_metrics {bare:.2f}s"
                      + (f"  connect {connect:.2f}s" if side else "")
                      + ("  (warm-up)" if round_ == 0 else ""), flush=True)  # fmt: skip
                if round_:
                    native_s.append(native)
                    persisted_s.append(persisted)
                    dagster_s.append(dagster)
                    bare_s.append(bare)
                    connect_s.append(connect)
        finally:
            if side is not None:
                side.close()
    n, d = statistics.median(native_s), statistics.median(dagster_s)
    p = statistics.median(persisted_s)
    b = statistics.median(bare_s)
    figures: dict[str, float | int] = {
        "native_s": round(n, 3), "dagster_s": round(d, 3), "ratio": round(d / n, 3),
        "native_persisted_s": round(p, 3), "ratio_vs_persisted": round(d / p, 3),
        "dagster_no_metrics_s": round(b, 3), "metrics_cost_s": round(d - b, 3),
        "jvms_per_run": max(len(app_ids), max(jvms)), "orders": args.orders,
        "rounds": args.rounds,
    }  # fmt: skip
    if args.connect:
        c = statistics.median(connect_s)
        figures.update(
            connect_dagster_s=round(c, 3),
            connect_ratio=round(c / d, 3),
            connect_jvms_in_run_process=max(connect_jvms),
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
