"""A third pipeline of the example, `review`, showing conditions and a branch (issue 7).

It reads retail's `enriched_orders` (a cross-pipeline link, like `returns`):

* `LargeOrders`: order lines of at least `min_amount` (config, default 100.00);
* `LargeOrderAlerts` runs only when `LargeOrders` has rows: a data condition, one Spark
  aggregate (`count(*) > 0`). Set `min_amount` to 1000000 in the Launchpad and the run skips
  it: the asset shows as not materialized, with a `pysetl/skipped` observation, not a failure.
* `CategoryRevenue` is a branch: `RecentCategoryRevenue` (the last 30 days of the data) when
  the run tag `pysetl/incremental` is `true`, else `AllCategoryRevenue` (a full recompute).
  One asset; its materialization says which alternative ran (`pysetl/branch_taken`);
* `TopCategory` reads `CategoryRevenue`, whichever branch ran.

Its branching sensor, `review_branching` (switch it on in the Automation tab), decides both
before any run starts: `LargeOrderAlerts` joins the run only when the stored `LargeOrders`
version has rows (read from its manifest: the count was recorded while it was written, no
Spark job), and `CategoryRevenue` takes the incremental path when `$REVIEW_INCREMENTAL` is
true where the daemon runs. Each new version of `large_orders` or `enriched_orders` gets one
run; its tags say what was chosen and why, and the tick history says why nothing ran.
"""

from __future__ import annotations

from typing import Any, Self

import dagster as dg
from pysetl.workflow import Delivery, Factory, Pipeline, Stage
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, LongType, StringType
from typedspark import Column, DataSet, Schema

from pysetl_dagster import (
    PySetlPipelineDefinitions,
    branch,
    pysetl_pipeline,
    when_config,
    when_data,
)

from ..retail.factories import EnrichedOrders
from ..retail.schemas import EnrichedOrderDataSet


class LargeOrder(Schema):
    """An order line of a large amount."""

    order_id: Column[LongType]
    customer_name: Column[StringType]
    category: Column[StringType]
    amount: Column[DoubleType]


class CategoryRevenueRow(Schema):
    """Revenue per product category."""

    category: Column[StringType]
    revenue: Column[DoubleType]


LargeOrderDataSet = DataSet[LargeOrder]
CategoryRevenueDataSet = DataSet[CategoryRevenueRow]


class LargeOrders(Factory[LargeOrderDataSet]):
    """Order lines of at least `min_amount`."""

    class Config(dg.Config):
        min_amount: float = 100.0

    config: Any = Config()
    orders = Delivery[EnrichedOrderDataSet]()

    def read(self) -> Self:
        self.src = self.orders.get()
        return self

    def process(self) -> Self:
        df = self.src.select(
            "order_id",
            "customer_name",
            "category",
            F.col("line_amount").cast("double").alias("amount"),
        )
        self.out = LargeOrderDataSet(df.filter(F.col("amount") >= self.config.min_amount))
        return self

    def write(self) -> Self:
        return self

    def get(self) -> LargeOrderDataSet:
        return self.out


class LargeOrderAlert(Schema):
    """Customers with large orders."""

    customer_name: Column[StringType]
    large_orders: Column[LongType]
    amount: Column[DoubleType]


class LargeOrderAlerts(Factory[DataSet[LargeOrderAlert]]):
    """Customers with large orders, only when there are any (a data condition)."""

    large = Delivery[LargeOrderDataSet]()
    condition = when_data(LargeOrders, lambda df: F.count(F.lit(1)) > 0, label="rows > 0")

    def read(self) -> Self:
        self.src = self.large.get()
        return self

    def process(self) -> Self:
        self.out = DataSet[LargeOrderAlert](
            self.src.groupBy("customer_name").agg(
                F.count(F.lit(1)).alias("large_orders"), F.sum("amount").alias("amount")
            )
        )
        return self

    def write(self) -> Self:
        return self

    def get(self) -> DataSet[LargeOrderAlert]:
        return self.out


def _category_revenue(orders: DataFrame) -> CategoryRevenueDataSet:
    return CategoryRevenueDataSet(
        orders.groupBy("category").agg(F.sum(F.col("line_amount").cast("double")).alias("revenue"))
    )


class AllCategoryRevenue(Factory[CategoryRevenueDataSet]):
    """Revenue per category over every order (the full recompute)."""

    orders = Delivery[EnrichedOrderDataSet]()

    def read(self) -> Self:
        self.src = self.orders.get()
        return self

    def process(self) -> Self:
        self.out = _category_revenue(self.src)
        return self

    def write(self) -> Self:
        return self

    def get(self) -> CategoryRevenueDataSet:
        return self.out


class RecentCategoryRevenue(AllCategoryRevenue):
    """Revenue per category over the last 30 days of the data (the incremental path)."""

    def process(self) -> Self:
        last = self.src.agg(F.max("order_date").alias("last"))
        recent = self.src.crossJoin(last).filter(F.col("order_date") > F.date_sub("last", 30))
        self.out = _category_revenue(recent.drop("last"))
        return self


class TopCategoryRow(Schema):
    category: Column[StringType]
    revenue: Column[DoubleType]


class TopCategory(Factory[DataSet[TopCategoryRow]]):
    """The category with the most revenue, from whichever CategoryRevenue branch ran."""

    revenue = Delivery[CategoryRevenueDataSet]()

    def read(self) -> Self:
        self.src = self.revenue.get()
        return self

    def process(self) -> Self:
        self.out = DataSet[TopCategoryRow](self.src.orderBy(F.desc("revenue")).limit(1))
        return self

    def write(self) -> Self:
        return self

    def get(self) -> DataSet[TopCategoryRow]:
        return self.out


def build_review(retail: PySetlPipelineDefinitions) -> PySetlPipelineDefinitions:
    """The `review` pipeline, reading retail's EnrichedOrders."""
    pipeline = Pipeline()
    pipeline.set_input_from_deliverable(retail.output(EnrichedOrders))
    pipeline.add_stage(Stage().add_factory(LargeOrders()))
    pipeline.add_stage(
        Stage()
        .add_factory(LargeOrderAlerts())
        .add_factory(
            branch(
                choose=when_config("incremental"),
                then=RecentCategoryRevenue(),
                otherwise=AllCategoryRevenue(),
                name="CategoryRevenue",
            )
        )
    )
    pipeline.add_stage(Stage().add_factory(TopCategory()))
    review = pysetl_pipeline(pipeline, name="review")
    review.branch_sensor(flags={"incremental": dg.EnvVar("REVIEW_INCREMENTAL")})
    return review
