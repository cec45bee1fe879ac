"""Small pipelines for the sensor tests.

`inbox`: CSV files dropped in a folder -> LoadEvents (reads every `*.csv` of the folder) ->
EventTotals (sum per kind). `report`: a second pipeline whose external input is `inbox`'s
EventTotals (a cross-pipeline link) -> TotalsReport.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from pysetl.workflow import Deliverable, Delivery, Factory, Pipeline, Stage
from pyspark.sql import SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType
from typedspark import Column, DataSet, Schema

from pysetl_dagster import PySetlPipelineDefinitions, pysetl_pipeline

INBOX_ID = "events_inbox"


@dataclass(frozen=True)
class Folder:
    """A folder of CSV files (`kind,amount` with a header)."""

    path: str


class Event(Schema):
    kind: Column[StringType]
    amount: Column[LongType]


class KindTotal(Schema):
    kind: Column[StringType]
    total: Column[LongType]


class ReportRow(Schema):
    kind: Column[StringType]
    total: Column[LongType]
    share_pct: Column[LongType]


class LoadEvents(Factory[DataSet[Event]]):
    """Every settled CSV file of the inbox (Spark skips `.x` and `_x` names)."""

    inbox = Delivery[Folder](delivery_id=INBOX_ID)

    def read(self) -> Self:
        spark = SparkSession.builder.getOrCreate()
        self.out = DataSet[Event](
            spark.read.schema(Event.get_structtype())
            .option("header", True)
            .option("pathGlobFilter", "*.csv")
            .csv(self.inbox.get().path)
        )
        return self

    def process(self) -> Self:
        return self

    def write(self) -> Self:
        return self

    def get(self) -> DataSet[Event]:
        return self.out


class EventTotals(Factory[DataSet[KindTotal]]):
    """Sum of amounts per kind."""

    events = Delivery[DataSet[Event]]()

    def read(self) -> Self:
        self.src = self.events.get()
        return self

    def process(self) -> Self:
        self.out = DataSet[KindTotal](
            self.src.groupBy("kind").agg(F.sum("amount").cast("long").alias("total"))
        )
        return self

    def write(self) -> Self:
        return self

    def get(self) -> DataSet[KindTotal]:
        return self.out


class TotalsReport(Factory[DataSet[ReportRow]]):
    """Each kind's share of the grand total (reads the `inbox` pipeline's EventTotals)."""

    totals = Delivery[DataSet[KindTotal]]()

    def read(self) -> Self:
        self.src = self.totals.get()
        return self

    def process(self) -> Self:
        grand = F.sum("total").over(Window.partitionBy())
        self.out = DataSet[ReportRow](
            self.src.withColumn("share_pct", (F.col("total") * 100 / grand).cast("long"))
        )
        return self

    def write(self) -> Self:
        return self

    def get(self) -> DataSet[ReportRow]:
        return self.out


def build_inbox_pipeline(folder: str | Path) -> Pipeline:
    pipeline = Pipeline()
    pipeline.set_input_from_deliverable(
        Deliverable[Folder](Folder(str(folder)), delivery_id=INBOX_ID)
    )
    pipeline.add_stage(Stage().add_factory(LoadEvents()))
    pipeline.add_stage(Stage().add_factory(EventTotals()))
    return pipeline


def build_report_pipeline(upstream: PySetlPipelineDefinitions) -> Pipeline:
    """The second pipeline: its only input is `upstream`'s EventTotals asset."""
    pipeline = Pipeline()
    pipeline.set_input_from_deliverable(upstream.output(EventTotals))
    pipeline.add_stage(Stage().add_factory(TotalsReport()))
    return pipeline


def inbox_and_report(
    folder: str | Path, name: str = "inbox"
) -> tuple[PySetlPipelineDefinitions, PySetlPipelineDefinitions]:
    inbox = pysetl_pipeline(build_inbox_pipeline(folder), name=name)
    report = pysetl_pipeline(build_report_pipeline(inbox), name=f"{name}_report")
    return inbox, report


def write_csv(path: Path, rows: list[tuple[str, int]], age_seconds: float | None = 60) -> Path:
    """Write a CSV; `age_seconds` back-dates its mtime (None: just written, still settling)."""
    path.write_text("kind,amount\n" + "".join(f"{k},{a}\n" for k, a in rows))
    if age_seconds is not None:
        then = time.time() - age_seconds
        os.utime(path, (then, then))
    return path
