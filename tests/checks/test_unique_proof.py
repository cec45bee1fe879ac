"""Uniqueness proved from the Factory's Spark plan: skipped only when the plan guarantees it.

Every case is checked against the data itself: a plan the prover accepts must have no
duplicate key, and each refused plan below does have duplicates (so a prover that accepted
too much would fail here, not silently pass a duplicated key)."""

from __future__ import annotations

from typing import Any, Self

import dagster as dg
import pandera.pyspark as pa
import pyspark.sql.types as T
import pytest
from pysetl.workflow import Factory
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from pysetl_dagster import Validation, pysetl_pipeline
from pysetl_dagster.checks.plan import build_check_plan, evaluate, unique_proofs
from pysetl_dagster.checks.unique_proof import proved_unique
from pysetl_dagster.spark.labels import asset_scope


def _duplicated(df: DataFrame, keys: list[str]) -> bool:
    return df.groupBy(*keys).count().where("count > 1").limit(1).count() > 0


def _proved(spark: SparkSession) -> dict[str, tuple[DataFrame, list[str]]]:
    ids = spark.range(50)
    orders = spark.range(200).select((F.col("id") % 40).alias("cid"), F.col("id").alias("oid"))
    per_customer = orders.groupBy("cid").agg(F.count("oid").alias("n"))
    return {
        "range ids": (ids, ["id"]),
        "range ids renamed, filtered, sorted, limited": (
            ids.select(F.col("id").alias("key"), (F.col("id") % 3).alias("bucket"))
            .where("key > 3")
            .orderBy(F.desc("bucket"))
            .limit(30),
            ["key"],
        ),
        "a superset of a unique key": (ids.withColumn("x", F.lit(1)), ["x", "id"]),
        "groupBy key": (per_customer, ["cid"]),
        "distinct rows": (orders.select("cid").distinct(), ["cid"]),
        "join of unique keys (the benchmark's shape)": (
            ids.join(per_customer, ids["id"] == per_customer["cid"]).select("id", "n"),
            ["id"],
        ),
        "left join, right side unique on the join key": (
            ids.join(per_customer, ids["id"] == per_customer["cid"], "left"),
            ["id"],
        ),
        "left semi join": (ids.join(orders, ids["id"] == orders["cid"], "left_semi"), ["id"]),
        "window over unique rows": (
            ids.withColumn("rank", F.row_number().over(Window.orderBy("id"))),
            ["id"],
        ),
    }


def _refused(spark: SparkSession) -> dict[str, tuple[DataFrame, list[str]]]:
    ids = spark.range(50)
    orders = spark.range(200).select((F.col("id") % 40).alias("cid"), F.col("id").alias("oid"))
    return {
        "union of ranges": (ids.union(spark.range(10)), ["id"]),
        "rows from the driver": (spark.createDataFrame([(1,), (1,)], "id long"), ["id"]),
        "a computed key": (ids.select((F.col("id") % 7).alias("k")), ["k"]),
        "join to a side with repeated keys": (
            ids.join(orders, ids["id"] == orders["cid"]).select("id", "oid"),
            ["id"],
        ),
        "join without an equality": (
            ids.crossJoin(spark.range(2).withColumnRenamed("id", "j")),
            ["id"],
        ),
        "right side of a left join": (
            spark.range(5).join(
                orders.groupBy("cid").count(), F.col("id") == F.col("cid") + 100, "left"
            ),
            ["cid"],
        ),
        "part of a groupBy key": (orders.groupBy("cid", "oid").count(), ["cid"]),
        "sample with replacement": (ids.sample(True, 3.0, seed=1), ["id"]),
        "explode": (ids.withColumn("x", F.explode(F.array(F.lit(1), F.lit(2)))), ["id"]),
    }


def test_the_plan_proves_uniqueness_only_when_the_data_has_no_duplicate(
    spark: SparkSession,
) -> None:
    for name, (df, keys) in _proved(spark).items():
        reason = proved_unique(df, keys)
        assert reason is not None and "no Spark job" in reason, name
        assert not _duplicated(df, keys), name
    for name, (df, keys) in _refused(spark).items():
        assert _duplicated(df, keys), f"{name}: the case must hold duplicates"
        assert proved_unique(df, keys) is None, name
    # a name the plan does not have, or two columns with one name: nothing is proved
    ids = spark.range(5)
    assert proved_unique(ids, ["missing"]) is None
    assert (
        proved_unique(ids.join(spark.range(5), "id").select(ids["id"], ids["id"]), ["id"]) is None
    )


SCHEMA = pa.DataFrameSchema(
    {"id": pa.Column(T.LongType()), "n": pa.Column(T.LongType())}, unique=["id"], name="Keyed"
)


def test_a_proved_check_reports_zero_duplicates_and_a_duplicated_key_is_still_counted(
    spark: SparkSession,
) -> None:
    """In `evaluate`: a proof is metadata on a passing check (no Spark job for it); without
    one, the same check computes and counts the duplicates."""
    plan = build_check_plan(Validation(SCHEMA), dg.AssetKey("k"), "Keyed")
    unique = spark.range(100).select("id", (F.col("id") * 2).alias("n"))
    proofs = unique_proofs(plan, unique)
    assert list(proofs) == ["unique__id"]
    tracker = spark.sparkContext.statusTracker()
    with asset_scope(spark, "proof-run", "k", "asset checks"):
        outcomes = {
            o.check.name: o
            for o in evaluate(plan, unique, {"__rows": 100, "__failed_any": 0}, proved=proofs)
        }
    assert tracker.getJobIdsForGroup("k:proof-run") == []  # nothing left to compute
    proved = outcomes["unique__id"]
    assert proved.passed and proved.failing_rows == 0 and proved.rows == 100
    assert "proved from the Factory's Spark plan" in proved.extra["evaluated_by"].value

    repeated = unique.union(spark.range(3).select("id", F.lit(0).alias("n")))
    assert unique_proofs(plan, repeated) == {}
    outcomes = {o.check.name: o for o in evaluate(plan, repeated, {}, proved={})}
    counted = outcomes["unique__id"]
    assert not counted.passed and counted.failing_rows == 6 and counted.rows == 103
    assert "evaluated_by" not in counted.extra


class Keyed(Factory[DataFrame]):
    """Rows keyed by `id`: unique (`spark.range`) or not, as run config says."""

    class Config(dg.Config):
        repeat: bool = False

    config: Any = Config()
    validation: Any = Validation(SCHEMA)

    def read(self) -> Self:
        return self

    def process(self) -> Self:
        spark = SparkSession.builder.getOrCreate()
        rows = spark.range(20).select("id", (F.col("id") * 2).alias("n"))
        self.out = rows.union(rows.limit(2)) if self.config.repeat else rows
        return self

    def write(self) -> Self:
        return self

    def get(self) -> DataFrame:
        return self.out


@pytest.mark.parametrize("repeat", [False, True])
def test_materialized_uniqueness_is_proved_or_counted(
    resources: dict[str, Any], repeat: bool
) -> None:
    defs = pysetl_pipeline([Keyed()], name=f"keyed_{str(repeat).lower()}")
    result = dg.materialize(
        defs.assets,
        resources=resources,
        run_config={"ops": {"keyed": {"config": {"repeat": repeat}}}},
    )
    assert result.success
    (evaluation,) = [
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.asset_check_evaluation_data.check_name == "unique__id"
    ]
    metadata = evaluation.metadata
    if repeat:
        assert not evaluation.passed
        assert metadata["failing_rows"].value == 4 and metadata["duplicate_groups"].value == 2
        assert "evaluated_by" not in metadata
    else:
        assert evaluation.passed and metadata["failing_rows"].value == 0
        assert "spark.range ids" in str(metadata["evaluated_by"].value)


def test_a_plan_deeper_than_the_budget_proves_nothing(spark: SparkSession) -> None:
    """The walk costs py4j calls per node: past `MAX_NODES` it gives up (the check runs)."""
    from pysetl_dagster.checks.unique_proof import MAX_NODES

    shallow = deep = spark.range(5)
    for n in range(MAX_NODES + 5):
        deep = deep.select("id", F.lit(n).alias("x")).select("id")
    for n in range(10):
        shallow = shallow.select("id", F.lit(n).alias("x")).select("id")
    assert proved_unique(shallow, ["id"]) is not None
    assert proved_unique(deep, ["id"]) is None
