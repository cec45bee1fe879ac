"""A small PySetl pipeline for tests: Numbers (configurable) -> Doubled -> Total."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Self

import dagster as dg
from pysetl.workflow import Delivery, Factory, Pipeline, Stage
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import LongType
from typedspark import Column, DataSet, Schema


class NumberRow(Schema):
    value: Column[LongType]


class DoubledRow(Schema):
    value: Column[LongType]
    doubled: Column[LongType]


class TotalRow(Schema):
    total: Column[LongType]


class StubFactory:
    """read/process/write do nothing and get() returns 1: for tests about wiring, not data.

    Mix it in first: `class NeedsInt(StubFactory, Factory[float])`.
    """

    def read(self) -> Self:
        return self

    def process(self) -> Self:
        return self

    def write(self) -> Self:
        return self

    def get(self) -> Any:
        return 1


# Called at the start of Doubled.read(), after its Delivery was injected: tests use it to
# hold two concurrent runs at the same point.
READ_HOOKS: list[Callable[[], object]] = []


class Numbers(Factory[DataSet[NumberRow]]):
    """The numbers 0..n-1."""

    class Config(dg.Config):
        n: int = 3

    config: Any = Config()

    def read(self) -> Self:
        return self

    def process(self) -> Self:
        spark = SparkSession.builder.getOrCreate()
        self.out = DataSet[NumberRow](spark.range(self.config.n).withColumnRenamed("id", "value"))
        return self

    def write(self) -> Self:
        return self

    def get(self) -> DataSet[NumberRow]:
        return self.out


class Doubled(Factory[DataSet[DoubledRow]]):
    """Each number next to its double."""

    numbers = Delivery[DataSet[NumberRow]]()

    def read(self) -> Self:
        for hook in READ_HOOKS:
            hook()
        self.src = self.numbers.get()
        return self

    def process(self) -> Self:
        self.out = DataSet[DoubledRow](self.src.withColumn("doubled", F.col("value") * 2))
        return self

    def write(self) -> Self:
        return self

    def get(self) -> DataSet[DoubledRow]:
        return self.out


class Total(Factory[DataSet[TotalRow]]):
    """The sum of the doubles."""

    doubled = Delivery[DataSet[DoubledRow]]()

    def read(self) -> Self:
        self.src = self.doubled.get()
        return self

    def process(self) -> Self:
        self.out = DataSet[TotalRow](self.src.agg(F.sum("doubled").cast("long").alias("total")))
        return self

    def write(self) -> Self:
        return self

    def get(self) -> DataSet[TotalRow]:
        return self.out


def build_numbers_pipeline() -> Pipeline:
    return (
        Pipeline()
        .add_stage(Stage().add_factory(Numbers()))
        .add_stage(Stage().add_factory(Doubled()))
        .add_stage(Stage().add_factory(Total()))
    )


def numbers_config(n: int) -> dict[str, Any]:
    """Run config setting Numbers' n for the asset job."""
    return {"ops": {"numbers": {"config": {"n": n}}}}
