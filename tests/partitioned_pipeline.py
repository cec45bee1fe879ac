"""Partitioned Factories for tests: Events (daily) -> DayCounts (daily) and AllDays (all days);
Regions (static)."""

from __future__ import annotations

from typing import Any, Self

from pysetl.workflow import Delivery, Factory, Pipeline, Stage
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType
from typedspark import Column, DataSet, Schema

from pysetl_dagster import daily, static

DAYS = daily("2024-01-01")


class EventRow(Schema):
    day: Column[StringType]
    value: Column[LongType]


class DayCountRow(Schema):
    day: Column[StringType]
    events: Column[LongType]


class RegionRow(Schema):
    region: Column[StringType]


class _Out:
    out: Any

    def read(self) -> Self:
        return self

    def write(self) -> Self:
        return self

    def get(self) -> Any:
        return self.out


class Events(_Out, Factory[DataSet[EventRow]]):
    """Three events per day, stamped with the day the run is for."""

    partitions = DAYS
    partition_key: str

    def process(self) -> Self:
        spark = SparkSession.builder.getOrCreate()
        df = (
            spark.range(3)
            .withColumnRenamed("id", "value")
            .withColumn("day", F.lit(self.partition_key))
        )
        self.out = DataSet[EventRow](df.select("day", "value"))
        return self


class DayCounts(_Out, Factory[DataSet[DayCountRow]]):
    """Events of the same day, counted (same partition as its input)."""

    partitions = DAYS
    events = Delivery[DataSet[EventRow]]()

    def process(self) -> Self:
        df = self.events.get().groupBy("day").agg(F.count(F.lit(1)).alias("events"))
        self.out = DataSet[DayCountRow](df)
        return self


class AllDays(_Out, Factory[DataSet[DayCountRow]]):
    """Events of every stored day, counted (unpartitioned: reads all partitions)."""

    events = Delivery[DataSet[EventRow]]()

    def process(self) -> Self:
        df = self.events.get().groupBy("day").agg(F.count(F.lit(1)).alias("events"))
        self.out = DataSet[DayCountRow](df)
        return self


class Regions(_Out, Factory[DataSet[RegionRow]]):
    """One row naming the region the run is for."""

    partitions = static(["eu", "us"])
    partition_key: str

    def process(self) -> Self:
        spark = SparkSession.builder.getOrCreate()
        self.out = DataSet[RegionRow](
            spark.createDataFrame([(self.partition_key,)], "region string")
        )
        return self


def build_events_pipeline() -> Pipeline:
    return (
        Pipeline()
        .add_stage(Stage().add_factory(Events()))
        .add_stage(Stage().add_factory(DayCounts()).add_factory(AllDays()))
    )


def build_daily_pipeline() -> Pipeline:
    """Every Factory daily: the Stage job can run one partition."""
    return (
        Pipeline()
        .add_stage(Stage().add_factory(Events()))
        .add_stage(Stage().add_factory(DayCounts()))
    )
