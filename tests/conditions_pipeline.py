"""A pipeline with conditions, for tests:

stage 0: Numbers (config n)
stage 1: GatedDoubled (runs when Numbers has rows), Squares
stage 2: Total (consumes GatedDoubled only), SquaresReport (runs with the flag `report`)
"""

from __future__ import annotations

from typing import Self

from pysetl.workflow import Delivery, Factory, Pipeline, Stage
from pyspark.sql import functions as F
from pyspark.sql.types import LongType
from typedspark import Column, DataSet, Schema

from pysetl_dagster import branch, variants, when_config, when_data

from .numbers_pipeline import Doubled, DoubledRow, NumberRow, Numbers, Total


class SquareRow(Schema):
    value: Column[LongType]
    square: Column[LongType]


class GatedDoubled(Doubled):
    """Doubled, only when Numbers has rows."""

    condition = when_data(Numbers, lambda df: F.count(F.lit(1)) > 0, label="rows > 0")


class Squares(Factory[DataSet[SquareRow]]):
    """Each number next to its square (no condition)."""

    numbers = Delivery[DataSet[NumberRow]]()

    def read(self) -> Self:
        self.src = self.numbers.get()
        return self

    def process(self) -> Self:
        self.out = DataSet[SquareRow](
            self.src.withColumn("square", F.col("value") * F.col("value"))
        )
        return self

    def write(self) -> Self:
        return self

    def get(self) -> DataSet[SquareRow]:
        return self.out


class SquaresReport(Factory[DataSet[SquareRow]]):
    """Squares again, only when the run flag `report` is set."""

    squares = Delivery[DataSet[SquareRow]]()
    condition = when_config("report")

    def read(self) -> Self:
        self.src = self.squares.get()
        return self

    def process(self) -> Self:
        self.out = DataSet[SquareRow](self.src.filter(F.col("square") > 0))
        return self

    def write(self) -> Self:
        return self

    def get(self) -> DataSet[SquareRow]:
        return self.out


def build_conditions_pipeline() -> Pipeline:
    return (
        Pipeline()
        .add_stage(Stage().add_factory(Numbers()))
        .add_stage(Stage().add_factory(GatedDoubled()).add_factory(Squares()))
        .add_stage(Stage().add_factory(Total()).add_factory(SquaresReport()))
    )


class FullDoubled(Doubled):
    """Every number doubled (the full recompute)."""


class IncrementalDoubled(Doubled):
    """Only the numbers above 1 (the incremental path): a different total, so a test can tell
    which branch ran."""

    def process(self) -> Self:
        super().process()
        self.out = DataSet[DoubledRow](self.out.filter(F.col("value") > 1))
        return self


def build_branch_pipeline() -> Pipeline:
    """Numbers -> DoubledBranch (IncrementalDoubled when the flag `incremental`, else
    FullDoubled) -> Total."""
    return (
        Pipeline()
        .add_stage(Stage().add_factory(Numbers()))
        .add_stage(
            Stage().add_factory(
                branch(
                    choose=when_config("incremental"),
                    then=IncrementalDoubled(),
                    otherwise=FullDoubled(),
                    name="DoubledBranch",
                )
            )
        )
        .add_stage(Stage().add_factory(Total()))
    )


class PricingA(Squares):
    """Variant a: squares."""


class PricingB(Squares):
    """Variant b: squares of the numbers above 0."""

    def process(self) -> Self:
        super().process()
        self.out = DataSet[SquareRow](self.out.filter(F.col("value") > 0))
        return self


def build_ab_pipeline() -> Pipeline:
    """Numbers -> PricingA and PricingB side by side (flag `pricing`: a, b or both)."""
    stage = Stage()
    for factory in variants("pricing", {"a": PricingA(), "b": PricingB()}):
        stage.add_factory(factory)
    return Pipeline().add_stage(Stage().add_factory(Numbers())).add_stage(stage)
