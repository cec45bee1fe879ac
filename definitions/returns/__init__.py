"""A second pipeline of the example, `returns`, linked to `retail`, with its sensors.

Return slips arrive as CSV files (`order_id,product_id,quantity,reason`) in an inbox folder,
`$RETAIL_INBOX` (default: `retail_inbox/` under `$DAGSTER_HOME`, else under the cwd):

* `CleanReturns` reads every settled `*.csv` of the inbox (an empty inbox gives no rows);
* `ReturnRates` joins them with retail's `enriched_orders` asset: retail's output is this
  pipeline's external input (`retail.output(EnrichedOrders)`), so the asset graph has one
  `enriched_orders` (retail's), and `return_rates` depends on it and reads its stored version.

Sensors (all start stopped: switch them on in the UI's Automation tab):

* `returns_new_files`: a new return file in the inbox runs `clean_returns` and `return_rates`;
* `returns_on_upstream`: a new materialization of `enriched_orders` runs `return_rates`;
* `retail_on_failure`: a failed retail run is appended to `retail_failures.jsonl` (next to the
  inbox) and POSTed to `$RETAIL_ALERT_WEBHOOK` when that is set.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Self

from pysetl.workflow import Deliverable, Delivery, Factory, Pipeline, Stage
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, IntegerType, LongType, StringType
from typedspark import Column, DataSet, Schema

from pysetl_dagster import PySetlPipelineDefinitions, pysetl_pipeline

from ..retail.factories import EnrichedOrders
from ..retail.schemas import COMPLETED, CsvSource, EnrichedOrder, EnrichedOrderDataSet

RETURNS_INBOX = "returns_inbox"


def inbox_dir() -> Path:
    """`$RETAIL_INBOX`, else `retail_inbox` under `$DAGSTER_HOME` (or the cwd)."""
    explicit = os.environ.get("RETAIL_INBOX")
    if explicit:
        return Path(explicit).expanduser().resolve()
    return Path(os.environ.get("DAGSTER_HOME", os.getcwd()), "retail_inbox").resolve()


class ReturnLine(Schema):
    """A line of a return slip, as it arrives."""

    order_id: Column[LongType]
    product_id: Column[LongType]
    quantity: Column[IntegerType]
    reason: Column[StringType]


class ReturnRate(Schema):
    """Units sold (completed orders) and returned per product."""

    product_id: Column[LongType]
    product_name: Column[StringType]
    sold: Column[LongType]
    returned: Column[LongType]
    return_rate_pct: Column[DoubleType]


ReturnLineDataSet = DataSet[ReturnLine]
ReturnRateDataSet = DataSet[ReturnRate]


class CleanReturns(Factory[ReturnLineDataSet]):
    """Every return slip of the inbox (`*.csv`; `.x`/`_x` names are skipped), without lines
    lacking an order or product, or with a non-positive quantity."""

    inbox = Delivery[CsvSource](delivery_id=RETURNS_INBOX)

    def read(self) -> Self:
        spark = SparkSession.getActiveSession() or SparkSession.builder.getOrCreate()
        folder = Path(self.inbox.get().path)
        if not any(folder.glob("*.csv")):  # no inbox yet, or nothing in it: no returns
            self.raw: DataFrame = spark.createDataFrame([], ReturnLine.get_structtype())
        else:
            self.raw = (
                spark.read.schema(ReturnLine.get_structtype())
                .option("header", True)
                .option("pathGlobFilter", "*.csv")
                .csv(str(folder))
            )
        return self

    def process(self) -> Self:
        self.output = ReturnLineDataSet(
            self.raw.where(
                ReturnLine.order_id.isNotNull()
                & ReturnLine.product_id.isNotNull()
                & (ReturnLine.quantity > 0)
            ).withColumn(ReturnLine.reason.str, F.lower(F.trim(ReturnLine.reason)))
        )
        return self

    def write(self) -> Self:
        return self

    def get(self) -> ReturnLineDataSet:
        return self.output


class ReturnRates(Factory[ReturnRateDataSet]):
    """Per product: units sold in completed orders, units returned, and the return rate (%).
    Reads retail's `enriched_orders` asset (a cross-pipeline link)."""

    returns = Delivery[ReturnLineDataSet]()
    orders = Delivery[EnrichedOrderDataSet]()

    def read(self) -> Self:
        return self

    def process(self) -> Self:
        orders = self.orders.get()
        sold = (
            orders.where(EnrichedOrder.status == F.lit(COMPLETED))
            .groupBy(EnrichedOrder.product_id, EnrichedOrder.product_name)
            .agg(F.sum(EnrichedOrder.quantity).cast("long").alias("sold"))
        )
        returned = (
            self.returns.get()
            .groupBy(ReturnLine.product_id)
            .agg(F.sum(ReturnLine.quantity).cast("long").alias("returned"))
        )
        rates = (
            sold.join(returned, "product_id", "left")
            .fillna(0, ["returned"])
            .withColumn("return_rate_pct", F.round(F.col("returned") * 100.0 / F.col("sold"), 2))
        )
        self.output = ReturnRateDataSet(rates.select(*ReturnRate.all_column_names()))
        return self

    def write(self) -> Self:
        return self

    def get(self) -> ReturnRateDataSet:
        return self.output


def build_returns(retail: PySetlPipelineDefinitions) -> PySetlPipelineDefinitions:
    """The `returns` pipeline, reading retail's EnrichedOrders, with its two sensors."""
    inbox = inbox_dir()
    pipeline = Pipeline()
    pipeline.set_input_from_deliverable(
        Deliverable[CsvSource](CsvSource(str(inbox)), delivery_id=RETURNS_INBOX)
    )
    pipeline.set_input_from_deliverable(retail.output(EnrichedOrders))
    pipeline.add_stage(Stage().add_factory(CleanReturns()))
    pipeline.add_stage(Stage().add_factory(ReturnRates()))
    returns = pysetl_pipeline(pipeline, name="returns")
    returns.on_new_files(inbox, factories=[CleanReturns], pattern="*.csv", settle_seconds=5)
    returns.on_upstream()
    return returns


def watch_failures(pipeline: PySetlPipelineDefinitions) -> None:
    """Record the pipeline's failed runs in a JSON-lines file, and POST them to
    `$RETAIL_ALERT_WEBHOOK` when it is set where the daemon runs."""
    log = inbox_dir().parent / f"{pipeline.name}_failures.jsonl"

    def record_failure(record: dict[str, Any]) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as fh:
            fh.write(json.dumps(record, default=str) + "\n")

    pipeline.on_failure(hook=record_failure, webhook_url=os.environ.get("RETAIL_ALERT_WEBHOOK"))
