"""The post-write pass when rows fail: counts and failure cases from the failing rows only,
uniqueness beside them in one query, the row count when the caller does not know it."""

from __future__ import annotations

import dagster as dg
import pandera.pyspark as pa
import pyspark.sql.types as T
from pyspark.sql import SparkSession

from pysetl_dagster import Validation
from pysetl_dagster.checks.plan import build_check_plan, evaluate, row_check
from pysetl_dagster.spark.labels import asset_scope

SCHEMA = pa.DataFrameSchema(
    {
        "id": pa.Column(T.LongType()),
        # a column's rule that names another column: the pass must read both
        "amount": pa.Column(
            T.LongType(), [pa.Check.ge(0), row_check("amount <= price", name="within_price")]
        ),
        "price": pa.Column(T.LongType()),
    },
    unique=["id"],
    name="Priced",
)
ROWS = [(1, 5, 10), (2, 20, 10), (2, -1, 10), (3, 7, 7), (4, 30, 9)]


def test_failing_rows_are_counted_with_cases_and_uniqueness_in_two_jobs(
    spark: SparkSession,
) -> None:
    df = spark.createDataFrame(ROWS, "id long, amount long, price long")
    plan = build_check_plan(Validation(SCHEMA), dg.AssetKey("priced"), "Priced")
    tracker = spark.sparkContext.statusTracker()
    for observed in ({}, {"__rows": len(ROWS), "__failed_any": 3}):
        group = f"failing-{len(observed)}"
        with asset_scope(spark, group, "priced", "asset checks"):
            outcomes = {o.check.name: o for o in evaluate(plan, df, observed)}
        assert len(tracker.getJobIdsForGroup(f"priced:{group}")) <= 2
        bounded = outcomes["amount__within_price"]
        assert (bounded.failing_rows, bounded.rows) == (2, 5)  # rows counted when not given
        assert sorted(c["value"] for c in bounded.failure_cases) == ["20", "30"]
        assert outcomes["amount__greater_than_or_equal_to"].failing_rows == 1
        assert outcomes["amount__greater_than_or_equal_to"].failure_cases == [
            {"column": "amount", "value": "-1"}
        ]
        unique = outcomes["unique__id"]
        assert (unique.failing_rows, unique.failure_cases) == (2, [{"id": "2", "count": "2"}])
        assert outcomes["id__not_nullable"].passed and outcomes["id__not_nullable"].rows == 5


def test_uniqueness_alone_counts_the_rows_when_they_are_not_known(spark: SparkSession) -> None:
    df = spark.createDataFrame(
        [(1, 1, 1), (2, 1, 1), (3, 1, 1)], "id long, amount long, price long"
    )
    plan = build_check_plan(Validation(SCHEMA), dg.AssetKey("priced"), "Priced")
    # the write observed that no row failed, but not the row count: only uniqueness runs
    outcomes = {o.check.name: o for o in evaluate(plan, df, {"__failed_any": 0})}
    assert all(o.passed for o in outcomes.values())
    assert {o.rows for n, o in outcomes.items() if n != "schema__columns" and o.rows} == {3}
