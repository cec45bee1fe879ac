"""The cache on the example pipeline: cold, unchanged, one leaf Factory changed.

In one process with one warm SparkSession (`local[2]`), on generated data (about 2M orders by
default, so the cold run is well over 10 s of Spark work):
  cold        - `materialize()` of every retail asset into empty storage;
  warm        - the same again, nothing changed: every Factory is reused from storage;
  one_changed - TopProducts' code edited (its `process` wrapped by a new function), the
                pipeline translated again, then materialized: only TopProducts recomputes.
Spark jobs are counted by Spark (jobs submitted by the application during the warm run).
`sink_input_scans`: stages that scanned the input file of a Factory that saves its output
itself through a PySetl `SparkRepository` in `write()`, during one cold materialization
(compute-once: 1; PySetl's write then the IO manager's write would scan it twice).

`fingerprint_s`: the stat fingerprint (size, mtime, ctime, inode, device) the cache key takes
of a local input file of `--input-mb` (1 GB by default), median of 5; `fingerprint_content_s`:
its content hash (`input_fingerprint="content"`), once, and `content_vs_cold` that time over the
cold materialization above.

The last line printed is one JSON object:
{"cold_s", "warm_s", "ratio", "spark_jobs_warm", "one_changed_s", "sink_input_scans",
"fingerprint_s", ...}

    .venv/bin/python benchmarks/cache.py [--orders 2000000] [--input-mb 1024]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402

from benchmarks.overhead import ensure_data  # noqa: E402
from benchmarks.own_sink import sink_input_scans  # noqa: E402
from definitions.retail.factories import TopProducts  # noqa: E402
from definitions.retail.pipeline import build_pipeline  # noqa: E402
from pysetl_dagster import PySparkSessionResource, SparkParquetIOManager, pysetl_pipeline  # noqa: E402
from pysetl_dagster.spark.labels import spark_jobs_submitted  # noqa: E402
from pysetl_dagster.storage.fingerprints import FingerprintOptions, value_fingerprint  # noqa: E402


def materialize(data: Path, resources: dict[str, Any], instance: dg.DagsterInstance) -> Any:
    assets = pysetl_pipeline(build_pipeline(data), name="retail").assets
    start = time.perf_counter()
    result = dg.materialize(assets, resources=resources, instance=instance)
    elapsed = time.perf_counter() - start
    assert result.success
    cached = {
        e.asset_key.to_user_string(): e.materialization.metadata["pysetl/cached"].value
        for e in result.get_asset_materialization_events()
        if e.asset_key is not None
    }
    return elapsed, cached


def fingerprints(size_mb: int, cold_s: float) -> dict[str, Any]:
    """What the cache key costs on a large local input: stat (every warm run) and content."""
    import os
    import statistics

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "input.bin"
        block = os.urandom(4 << 20)
        with open(path, "wb") as handle:
            for _ in range(max(size_mb // 4, 1)):
                handle.write(block)
        stat_runs = []
        for _ in range(5):
            start = time.perf_counter()
            value_fingerprint(str(path), options=FingerprintOptions())
            stat_runs.append(time.perf_counter() - start)
        options = FingerprintOptions(content=True)
        start = time.perf_counter()
        value_fingerprint(str(path), options=options)
        content_s = time.perf_counter() - start
        assert options.kinds == {"content"}
        return {
            "input_mb": size_mb,
            "fingerprint_s": round(statistics.median(stat_runs), 5),
            "fingerprint_content_s": round(content_s, 3),
            "content_vs_cold": round(content_s / cold_s, 4),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=2_000_000)
    parser.add_argument("--input-mb", type=int, default=1024, help="size of the input file")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a cheap run (benchmarks/regression.py): --orders 20000",
    )
    args = parser.parse_args()
    if args.quick:
        args.orders = 20_000

    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.maxMetadataStringLength", "10000")  # full paths in plans
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    data = ensure_data(spark, args.orders)
    figures: dict[str, Any] = {"orders": args.orders}
    with tempfile.TemporaryDirectory() as tmp, dg.DagsterInstance.ephemeral() as instance:
        resources = {
            "pyspark": PySparkSessionResource(stop_at_exit=False),
            "io_manager": SparkParquetIOManager(base_path=str(Path(tmp) / "storage")),
        }
        cold_s, cold = materialize(data, resources, instance)
        assert not any(cold.values()), cold
        jobs_before = spark_jobs_submitted(spark)
        warm_s, warm = materialize(data, resources, instance)
        figures["spark_jobs_warm"] = spark_jobs_submitted(spark) - jobs_before
        assert all(warm.values()), warm

        original = TopProducts.process

        def process(self: TopProducts) -> TopProducts:  # an edit of TopProducts' code
            return original(self)

        TopProducts.process = process  # type: ignore[method-assign, assignment]
        try:
            one_changed_s, changed = materialize(data, resources, instance)
        finally:
            TopProducts.process = original  # type: ignore[method-assign]
        recomputed = sorted(k for k, hit in changed.items() if not hit)
        assert recomputed == ["top_products"], recomputed
        figures.update(
            cold_s=round(cold_s, 3),
            warm_s=round(warm_s, 3),
            ratio=round(warm_s / cold_s, 4),
            one_changed_s=round(one_changed_s, 3),
            recomputed_when_changed=recomputed,
        )
    # a Factory saving its output through a SparkRepository in write(): scans of its input
    # during one cold materialization, counted from Spark's SQL status store
    figures["sink_input_scans"] = sink_input_scans(spark)
    figures.update(fingerprints(args.input_mb, figures["cold_s"]))
    keys = [
        "cold_s",
        "warm_s",
        "ratio",
        "spark_jobs_warm",
        "one_changed_s",
        "sink_input_scans",
        "fingerprint_s",
    ]
    print(json.dumps({**{k: figures[k] for k in keys}, **figures}))


if __name__ == "__main__":
    main()
