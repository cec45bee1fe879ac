"""What pandera checks cost on a large Spark output, against pandera's own PySpark validation.

In one process with one warm SparkSession, alternately, per round:
  plain   - `materialize()` of a Factory over generated rows, with no schema;
  checked - the same Factory with a pandera schema of 15 checks (2 regexes, 1 uniqueness,
            ranges, isin/notin, string lengths, nullability) as asset checks;
  pandera - pandera's own `schema.validate(df, lazy=True)` on the stored output.
check_s = checked - plain (what the checks add to a materialization), compute_s = plain.
Spark jobs the checks add are counted from Spark's status tracker (job group of the step).
Last line: {"rows", "checks", "compute_s", "check_s", "overhead", "pandera_s", "vs_pandera",
"spark_jobs"} (medians over the counted rounds; round 0 warms up).

    .venv/bin/python benchmarks/validation.py [--rows 5000000] [--rounds 3]
    .venv/bin/python benchmarks/validation.py --breakdown   # where check_s goes, by part
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Self

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402
import pandera.pyspark as pa  # noqa: E402
import pyspark.sql.types as T  # noqa: E402
from pysetl.workflow import Factory  # noqa: E402
from pyspark.sql import DataFrame, SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from pysetl_dagster import (  # noqa: E402
    PySparkSessionResource,
    SparkParquetIOManager,
    Validation,
    pysetl_pipeline,
)

SCHEMA = pa.DataFrameSchema(
    {
        "id": pa.Column(T.LongType(), pa.Check.ge(0)),
        "name": pa.Column(T.StringType(), pa.Check.str_length(3, 20)),
        "email": pa.Column(T.StringType(), pa.Check.str_matches(r"^[a-z0-9]+@[a-z]+\.com$")),
        "age": pa.Column(T.IntegerType(), pa.Check.in_range(0, 120), nullable=True),
        "country": pa.Column(T.StringType(), pa.Check.isin(["FR", "DE", "US", "GB", "ES"])),
        "code": pa.Column(T.StringType(), pa.Check.str_matches(r"^[A-Z]{2}-[0-9]+$")),
        "score": pa.Column(T.DoubleType(), [pa.Check.ge(0.0), pa.Check.le(100.0)]),
        "status": pa.Column(T.StringType(), pa.Check.notin(["deleted"])),
        "amount": pa.Column(T.LongType(), pa.Check.gt(-1)),
    },
    unique=["id"],
    name="Wide",
)
ROWS = 5_000_000


def wide_rows(rows: int) -> DataFrame:
    """Deterministic rows with a little real work (hashes, string building, a window-free
    aggregation-free projection): the Factory's compute."""
    spark = SparkSession.builder.getOrCreate()
    h = F.abs(F.xxhash64("id"))
    return spark.range(rows).select(
        F.col("id"),
        F.concat(F.lit("user"), (h % 100000).cast("string")).alias("name"),
        F.concat(F.lit("u"), F.col("id").cast("string"), F.lit("@mail.com")).alias("email"),
        F.when(h % 50 == 0, None).otherwise((h % 90).cast("int")).alias("age"),
        F.element_at(
            F.array(*[F.lit(c) for c in ["FR", "DE", "US", "GB", "ES"]]), (h % 5 + 1).cast("int")
        ).alias("country"),
        F.concat(F.lit("AB-"), (h % 1000).cast("string")).alias("code"),
        ((h % 10000) / 100.0).alias("score"),
        F.when(h % 3 == 0, "active").otherwise("idle").alias("status"),
        (h % 1000000).alias("amount"),
    )


class Wide(Factory[DataFrame]):
    """Generated rows (`ROWS`)."""

    def read(self) -> Self:
        return self

    def process(self) -> Self:
        self.out = wide_rows(ROWS)
        return self

    def write(self) -> Self:
        return self

    def get(self) -> DataFrame:
        return self.out


def breakdown(spark: SparkSession, rows: int, rounds: int) -> None:
    """Time the parts of check_s on the same DataFrame: the plain write, the write with the
    row-level checks observed, the same checks as one aggregation over the written files, and
    uniqueness (as groupBy and as count_distinct)."""
    from pyspark.sql import Observation

    from pysetl_dagster.checks.plan import build_check_plan, observed_exprs

    plan = build_check_plan(Validation(SCHEMA), dg.AssetKey("wide"), "Wide")
    tmp = Path(tempfile.mkdtemp(prefix="pysetl-validation-breakdown-"))

    def timed(action: Any) -> float:
        start = time.perf_counter()
        action()
        return time.perf_counter() - start

    def one_round(round_: int) -> dict[str, float]:
        df = wide_rows(rows)
        exprs, _ = observed_exprs(plan, df)
        write_s = timed(lambda: df.write.parquet(str(tmp / f"plain{round_}")))
        observation = Observation("checks")
        observed = df.observe(observation, *exprs)
        observed_s = timed(lambda: observed.write.parquet(str(tmp / f"observed{round_}")))
        written = spark.read.schema(df.schema).parquet(str(tmp / f"plain{round_}"))
        agg_s = timed(lambda: written.agg(*exprs).first())
        unique_s = timed(
            lambda: (
                written.groupBy("id")
                .count()
                .where("count > 1")
                .agg(F.count(F.lit(1)), F.sum("count"))
                .first()
            )
        )
        distinct_s = timed(lambda: written.select(F.count_distinct("id")).first())
        return {
            "round": round_,
            "write_s": round(write_s, 2),
            "observed_extra_s": round(observed_s - write_s, 2),
            "aggregation_s": round(agg_s, 2),
            "unique_groupby_s": round(unique_s, 2),
            "unique_count_distinct_s": round(distinct_s, 2),
        }

    for round_ in range(rounds + 1):
        print(json.dumps(one_round(round_)), flush=True)


def main() -> None:
    global ROWS
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--rounds", type=int, default=3, help="counted rounds (+1 warm-up)")
    parser.add_argument("--breakdown", action="store_true", help="time the parts of check_s")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a cheap run (benchmarks/regression.py): --rows 100000 --rounds 1",
    )
    args = parser.parse_args()
    if args.quick:
        args.rows, args.rounds = 100_000, 1
    ROWS = args.rows
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    if args.breakdown:
        breakdown(spark, args.rows, args.rounds)
        return
    plain = pysetl_pipeline([type("Wide", (Wide,), {"validation": None})()], name="plain")
    checked = pysetl_pipeline(
        [type("Wide", (Wide,), {"validation": Validation(SCHEMA)})()], name="checked"
    )
    n_checks = len(checked.translated.check_specs(checked.graph.nodes[0]))
    tmp = Path(tempfile.mkdtemp(prefix="pysetl-validation-bench-"))
    instance = dg.DagsterInstance.ephemeral()
    tracker = spark.sparkContext.statusTracker()
    samples: dict[str, list[float]] = {"plain": [], "checked": [], "pandera": []}
    jobs: list[int] = []

    def run(defs: Any, name: str) -> tuple[float, int, str]:
        io = SparkParquetIOManager(base_path=str(tmp / name))
        resources = {"pyspark": PySparkSessionResource(stop_at_exit=False), "io_manager": io}
        start = time.perf_counter()
        result = dg.materialize(defs.assets, resources=resources, instance=instance)
        seconds = time.perf_counter() - start
        assert result.success
        group_jobs = len(tracker.getJobIdsForGroup(f"wide:{result.run_id}"))
        return seconds, group_jobs, io.current_version_path(dg.AssetKey("wide"))

    for round_ in range(args.rounds + 1):
        plain_s, plain_jobs, _ = run(plain, "plain")
        checked_s, checked_jobs, stored = run(checked, "checked")
        start = time.perf_counter()
        errors = SCHEMA.validate(spark.read.parquet(str(stored)), lazy=True).pandera.errors
        pandera_s = time.perf_counter() - start
        assert not errors, errors
        print(
            f"round {round_}: plain {plain_s:.2f}s checked {checked_s:.2f}s "
            f"pandera {pandera_s:.2f}s jobs {plain_jobs}->{checked_jobs}",
            flush=True,
        )
        if round_ == 0:
            continue
        samples["plain"].append(plain_s)
        samples["checked"].append(checked_s)
        samples["pandera"].append(pandera_s)
        jobs.append(checked_jobs - plain_jobs)

    compute_s = statistics.median(samples["plain"])
    check_s = max(statistics.median(samples["checked"]) - compute_s, 0.0)
    pandera_s = statistics.median(samples["pandera"])
    print(
        json.dumps(
            {
                "rows": ROWS,
                "checks": n_checks,
                "compute_s": round(compute_s, 3),
                "check_s": round(check_s, 3),
                "overhead": round(check_s / compute_s, 3),
                "pandera_s": round(pandera_s, 3),
                "vs_pandera": round(check_s / pandera_s, 3),
                "spark_jobs": max(jobs),
            }
        )
    )


if __name__ == "__main__":
    main()
