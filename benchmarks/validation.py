"""What pandera checks cost on a large Spark output, against pandera's own PySpark validation.

In one process with one warm SparkSession, alternately, per round, each materialization into
*fresh storage* (a new folder every round: the cache never answers, this measures work):
  plain   - `materialize()` of a Factory over generated rows, with no schema;
  checked - the same Factory with a pandera schema of 23 checks of every kind (nullability,
            ranges, comparisons, isin/notin, string lengths, 2 regexes, a prefix, uniqueness,
            a custom column rule and a dataframe-level rule as `row_check`s, columns, drift)
            as asset checks;
  pandera - pandera's own `schema.validate(df, lazy=True)` on the stored output;
  join_plain / join_checked - a realistic Factory (orders aggregated per customer, joined to
            the customers) with the same schema, without and with checks.
check_s = checked - plain (what the checks add to a materialization), compute_s = plain.
Spark jobs are counted from Spark's status tracker (job group of the step): `check_jobs` =
jobs of checked - jobs of plain (the same Factory work), `spark_jobs` the same (kept name).
Before the last line, the realistic Factory's row:
{"factory": "join_aggregate", "rows", "compute_s", "check_s", "overhead", "check_jobs"}.
Last line: {"rows", "checks", "compute_s", "check_s", "overhead", "pandera_s", "vs_pandera",
"spark_jobs", "check_jobs"} (medians over the counted rounds; round 0 warms up).

    .venv/bin/python benchmarks/validation.py [--rows 5000000] [--rounds 3]
    .venv/bin/python benchmarks/validation.py --breakdown   # where check_s goes, by part
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
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
from pysetl_dagster.checks.plan import row_check  # noqa: E402

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
        "amount": pa.Column(
            T.LongType(),
            [pa.Check.gt(-1), row_check("amount < 1000000", name="amount_bounded")],
        ),
    },
    unique=["id"],
    checks=[row_check("status <> 'deleted' OR score = 0", name="live_or_zero")],
    name="Wide",
)
ROWS = 5_000_000


def jvm_cpu() -> float:
    """CPU seconds (user + system) of this process's children: the Spark JVM (from /proc).
    Steadier than wall time on a shared machine: other workloads do not add to it."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid():
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def py_cpu() -> float:
    """CPU seconds of this Python process (Dagster's event recording, our per-check Python,
    py4j calls): what the JVM's figure does not include."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


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


def join_aggregate_rows(rows: int) -> DataFrame:
    """A realistic Factory: `rows` orders aggregated per customer (a shuffle), joined to
    `rows / 10` customers (another), shaped like `wide_rows`."""
    spark = SparkSession.builder.getOrCreate()
    customers = max(rows // 10, 1)
    h = F.abs(F.xxhash64("id"))
    orders = spark.range(rows).select(
        (h % customers).alias("cid"),
        ((h % 10000) / 100.0).alias("price"),
        (h % 7).alias("qty"),
    )
    per_customer = orders.groupBy("cid").agg(
        F.avg("price").alias("score"), F.sum("qty").alias("amount")
    )
    people = wide_rows(customers).drop("score", "amount")
    joined = people.join(per_customer, people["id"] == per_customer["cid"])
    return joined.select(*SCHEMA.columns)


class JoinAggregate(Factory[DataFrame]):
    """Orders aggregated per customer, joined to the customers (`ROWS` orders)."""

    def read(self) -> Self:
        return self

    def process(self) -> Self:
        self.out = join_aggregate_rows(ROWS)
        return self

    def write(self) -> Self:
        return self

    def get(self) -> DataFrame:
        return self.out


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
    """Where check_s goes, on the same DataFrame. Each part as [Spark JVM CPU s, this
    process's CPU s, wall s] (CPU from /proc and getrusage: steadier than wall time on a
    loaded machine): the plain write; the write observing the row count (what every
    materialization observes); observing one aggregate per row-level check (the shape before
    issue 18); the two fused aggregates (rows, rows failing any check: what the checked write
    observes); the same without the two regexes; the post-write pass over the written files
    when rows fail (counts and failure cases of every row-level check, uniqueness), the
    failing path's parts (counts alone, cases of the failed checks only), uniqueness alone;
    our Python evaluation of the 22 other checks on valid data (no Spark job); and Dagster's
    cost of recording 23 check results in the instance's storage (one asset without Spark,
    with and without the check results)."""
    from dataclasses import replace

    from pyspark.sql import Observation

    from pysetl_dagster.checks.plan import (
        FAILED_ANY,
        ROWS,
        CheckOutcome,
        _fused_pass,
        _row_predicates,
        build_check_plan,
        evaluate,
        observed_exprs,
    )

    plan = build_check_plan(Validation(SCHEMA), dg.AssetKey("wide"), "Wide")
    tmp = Path(tempfile.mkdtemp(prefix="pysetl-validation-breakdown-"))

    def timed(action: Any) -> list[float]:
        jvm, py, start = jvm_cpu(), py_cpu(), time.perf_counter()
        action()
        return [
            round(jvm_cpu() - jvm, 2),
            round(py_cpu() - py, 2),
            round(time.perf_counter() - start, 2),
        ]

    def one_round(round_: int) -> dict[str, Any]:
        df = wide_rows(rows)
        predicates = _row_predicates(plan, df)
        per_check = [F.count(F.lit(1))] + [F.count_if(e).alias(f"c{i}") for i, _, e in predicates]
        fused, _ = observed_exprs(plan, df)
        no_regex = [
            (i, c, e) for i, c, e in predicates if c.check is None or c.check.name != "str_matches"
        ]
        from functools import reduce

        any_no_regex = reduce(
            lambda a, b: a | b, [F.coalesce(e, F.lit(False)) for *_, e in no_regex]
        )
        variants = {
            "plain": df,
            "count_observed": df.observe(Observation(), F.count(F.lit(1))),
            "per_check": df.observe(Observation(), *per_check),
            "fused": df.observe(Observation(), *fused),
            "fused_no_regex": df.observe(
                Observation(), F.count(F.lit(1)), F.count_if(any_no_regex)
            ),
        }
        out: dict[str, Any] = {"round": round_, "parts": "[jvm_cpu_s, py_cpu_s, wall_s]"}
        for name, frame in variants.items():
            out[name] = timed(lambda f=frame, n=name: f.write.parquet(str(tmp / f"{n}{round_}")))
        written = spark.read.schema(df.schema).parquet(str(tmp / f"plain{round_}"))
        uniques = [c for c in plan.checks if c.kind == "unique"]
        out["failing_pass"] = timed(lambda: _fused_pass(written, predicates, uniques, 5))
        out["failing_counts_only"] = timed(lambda: _fused_pass(written, predicates, uniques, 0))
        out["unique_only"] = timed(lambda: _fused_pass(written, [], uniques, 5))
        no_unique = replace(plan, checks=tuple(c for c in plan.checks if c.kind != "unique"))
        valid = {ROWS: rows, FAILED_ANY: 0}
        outcomes: list[Any] = []
        out["evaluate_python"] = timed(
            lambda: outcomes.extend(evaluate(no_unique, written, valid, broken={}))
        )
        outcomes += [CheckOutcome(c, True, 0, rows) for c in uniques]
        out[f"dagster_record_{len(outcomes)}"] = record_cost(plan, outcomes)
        return out

    for round_ in range(rounds + 1):
        print(json.dumps(one_round(round_)), flush=True)


def record_cost(plan: Any, outcomes: Sequence[Any]) -> list[float]:
    """Dagster's own cost of recording one materialization's check results (events and
    metadata in the instance's storage): an asset without Spark, materialized with and
    without its results, the difference in [jvm, py, wall] seconds (median of 5)."""
    specs = plan.specs()
    results = [o.result(plan) for o in outcomes]
    key = plan.asset_key

    @dg.asset(name=key.path[-1], check_specs=specs)
    def with_checks() -> Any:
        yield dg.Output(1)
        yield from results

    @dg.asset(name=key.path[-1])
    def without() -> int:
        return 1

    instance = dg.DagsterInstance.ephemeral()

    def cost(asset: Any) -> list[float]:
        parts = []
        for _ in range(6):
            py, start = py_cpu(), time.perf_counter()
            assert dg.materialize([asset], instance=instance).success
            parts.append((py_cpu() - py, time.perf_counter() - start))
        return [
            statistics.median(p[0] for p in parts[1:]),
            statistics.median(p[1] for p in parts[1:]),
        ]

    (py_with, wall_with), (py_without, wall_without) = cost(with_checks), cost(without)
    return [0.0, round(py_with - py_without, 3), round(wall_with - wall_without, 3)]


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
    plain_defs = pysetl_pipeline([type("Wide", (Wide,), {"validation": None})()], name="plain")
    checked_defs = pysetl_pipeline(
        [type("Wide", (Wide,), {"validation": Validation(SCHEMA)})()], name="checked"
    )
    join_plain_defs = pysetl_pipeline(
        [type("JoinAggregate", (JoinAggregate,), {"validation": None})()], name="join_plain"
    )
    join_checked_defs = pysetl_pipeline(
        [type("JoinAggregate", (JoinAggregate,), {"validation": Validation(SCHEMA)})()],
        name="join_checked",
    )
    n_checks = len(checked_defs.translated.check_specs(checked_defs.graph.nodes[0]))
    tmp = Path(tempfile.mkdtemp(prefix="pysetl-validation-bench-"))
    instance = dg.DagsterInstance.ephemeral()
    tracker = spark.sparkContext.statusTracker()
    names = ("plain", "checked", "pandera", "join_plain", "join_checked")
    # per measure: wall seconds, Spark JVM CPU seconds, this process's CPU seconds
    samples: dict[str, dict[str, list[float]]] = {
        n: {"wall": [], "jvm": [], "py": []} for n in names
    }
    jobs: list[int] = []
    join_jobs: list[int] = []

    def measured(action: Any) -> tuple[Any, dict[str, float]]:
        jvm, py, start = jvm_cpu(), py_cpu(), time.perf_counter()
        value = action()
        seconds = time.perf_counter() - start
        return value, {"wall": seconds, "jvm": jvm_cpu() - jvm, "py": py_cpu() - py}

    def run(defs: Any, name: str, round_: int) -> tuple[dict[str, float], int, str]:
        # fresh storage every round: a stored version with the same cache key never answers
        io = SparkParquetIOManager(base_path=str(tmp / f"{name}-{round_}"))
        resources = {"pyspark": PySparkSessionResource(stop_at_exit=False), "io_manager": io}
        result, cost = measured(
            lambda: dg.materialize(defs.assets, resources=resources, instance=instance)
        )
        assert result.success
        (event,) = result.get_asset_materialization_events()
        assert event.materialization.metadata["pysetl/cached"].value is False
        key = event.asset_key
        assert key is not None
        group_jobs = len(tracker.getJobIdsForGroup(f"{key.to_user_string()}:{result.run_id}"))
        return cost, group_jobs, io.current_version_path(key)

    def pandera_validate(stored: str) -> Any:
        return SCHEMA.validate(spark.read.parquet(str(stored)), lazy=True).pandera.errors

    for round_ in range(args.rounds + 1):
        plain, plain_jobs, _ = run(plain_defs, "plain", round_)
        checked, checked_jobs, stored = run(checked_defs, "checked", round_)
        errors, pandera = measured(lambda s=stored: pandera_validate(s))
        assert not errors, errors
        join_plain, join_plain_jobs, _ = run(join_plain_defs, "join_plain", round_)
        join_checked, join_checked_jobs, _ = run(join_checked_defs, "join_checked", round_)
        costs = dict(zip(names, (plain, checked, pandera, join_plain, join_checked), strict=True))
        print(
            f"round {round_}: "
            + "  ".join(
                f"{n} {c['wall']:.2f}s (jvm {c['jvm']:.2f} py {c['py']:.2f} cpu s)"
                for n, c in costs.items()
            )
            + f"  jobs {plain_jobs}->{checked_jobs}, join {join_plain_jobs}->{join_checked_jobs}",
            flush=True,
        )
        if round_ == 0:
            continue
        for n, c in costs.items():
            for part, value in c.items():
                samples[n][part].append(value)
        jobs.append(checked_jobs - plain_jobs)
        join_jobs.append(join_checked_jobs - join_plain_jobs)

    def median(name: str, part: str = "wall") -> float:
        return statistics.median(samples[name][part])

    def cpu(name: str) -> float:
        return median(name, "jvm") + median(name, "py")

    def cpu_figures(plain: str, checked: str) -> dict[str, float]:
        """The same figures in CPU seconds (JVM + Python): what a busy machine disturbs
        least; check_jvm_cpu_s is Spark's part, check_py_cpu_s Dagster's and ours."""
        check_cpu = cpu(checked) - cpu(plain)
        return {
            "compute_cpu_s": round(cpu(plain), 3),
            "check_cpu_s": round(check_cpu, 3),
            "check_jvm_cpu_s": round(median(checked, "jvm") - median(plain, "jvm"), 3),
            "check_py_cpu_s": round(median(checked, "py") - median(plain, "py"), 3),
            "overhead_cpu": round(check_cpu / cpu(plain), 3),
        }

    join_compute_s = median("join_plain")
    join_check_s = max(median("join_checked") - join_compute_s, 0.0)
    print(
        json.dumps(
            {
                "factory": "join_aggregate",
                "rows": ROWS,
                "compute_s": round(join_compute_s, 3),
                "check_s": round(join_check_s, 3),
                "overhead": round(join_check_s / join_compute_s, 3),
                "check_jobs": max(join_jobs),
                **cpu_figures("join_plain", "join_checked"),
            }
        )
    )
    compute_s = median("plain")
    check_s = max(median("checked") - compute_s, 0.0)
    pandera_s = median("pandera")
    cpu_row = cpu_figures("plain", "checked")
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
                "check_jobs": max(jobs),
                **cpu_row,
                "pandera_cpu_s": round(cpu("pandera"), 3),
                "vs_pandera_cpu": round(cpu_row["check_cpu_s"] / cpu("pandera"), 3),
            }
        )
    )


if __name__ == "__main__":
    main()
