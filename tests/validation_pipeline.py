"""Factories with pandera schemas for the validation tests: People -> PeopleCount.

`People` builds its rows from run config (`variant`: good, bad or wide), so one pipeline can
produce valid data, data breaking every kind of check, or data with a changed schema.
"""

from __future__ import annotations

from typing import Any, Self

import dagster as dg
import pandera.pyspark as pa
import pyspark.sql.types as T
from pysetl.workflow import Delivery, Factory
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pysetl_dagster import Validation

COLUMNS = (
    "id long, name string, email string, age int, country string, code string, "
    "score double, status string, tag string"
)

GOOD_ROWS = [
    (1, "Alice", "alice@example.com", 34, "FR", "ab", 10.0, "active", "t_one"),
    (2, "Bob", "bob@example.org", 51, "DE", "abc", 99.5, "active", "t_two"),
    (3, None, None, None, None, None, 0.0, None, None),  # nulls pass every value check
]

# Every row breaks something; the counts each check must report are in BAD_COUNTS.
BAD_ROWS = [
    (1, "alice", "alice@example.com", 34, "FR", "ab", 10.0, "active", "t_one"),  # name
    (1, "Bob", "bob-at-example", 200, "DE", "abc", 99.5, "active", "t_two"),  # dup id, email, age
    (-3, "Carol", "c@x.io", 20, "XX", "abcdef", 150.0, "deleted", "x_three"),  # many
    (4, "Dan", "d@x.io", -1, "US", "a", None, None, "t_four"),  # age, code, score null
]
BAD_COUNTS = {
    "id__greater_than_or_equal_to": 1,
    "name__str_matches": 1,
    "email__str_matches": 1,
    "age__in_range": 2,
    "country__isin": 1,
    "code__str_length": 2,
    "score__not_nullable": 1,
    "score__less_than_or_equal_to": 1,
    "status__notin": 1,
    "tag__str_startswith": 1,
    "unique__id": 2,
}
WARN_CHECKS = {"age__less_than"}  # declared with raise_warning=True: age 200 trips it


def _at_least(data: Any, floor: int) -> bool:
    """A custom check pandera's PySpark backend runs itself (no Spark column for it). pandera
    passes the column object only to checks with keyword arguments, hence `floor`."""
    return data.dataframe.filter(F.col(data.column_name) < floor).limit(1).count() == 0


def person_schema(name: str = "Person") -> Any:
    """Eleven kinds of check over nine columns, one of them WARN-only and one custom."""
    return pa.DataFrameSchema(
        {
            "id": pa.Column(T.LongType(), pa.Check.ge(0)),
            "name": pa.Column(T.StringType(), pa.Check.str_matches(r"[A-Z][a-z]+$"), nullable=True),
            "email": pa.Column(
                T.StringType(), pa.Check.str_matches(r"[^@\s]+@[^@\s]+\.[a-z]+$"), nullable=True
            ),
            "age": pa.Column(
                T.IntegerType(),
                [
                    pa.Check.in_range(0, 150),
                    pa.Check.less_than(120, raise_warning=True),
                ],
                nullable=True,
            ),
            "country": pa.Column(T.StringType(), pa.Check.isin(["FR", "DE", "US"]), nullable=True),
            "code": pa.Column(T.StringType(), pa.Check.str_length(2, 3), nullable=True),
            "score": pa.Column(T.DoubleType(), pa.Check.le(100.0), nullable=False),
            "status": pa.Column(T.StringType(), pa.Check.notin(["deleted"]), nullable=True),
            "tag": pa.Column(T.StringType(), pa.Check.str_startswith("t_"), nullable=True),
        },
        unique=["id"],
        name=name,
    )


def custom_schema() -> Any:
    return pa.DataFrameSchema(
        {
            "age": pa.Column(
                T.IntegerType(), pa.Check(_at_least, name="non_negative", floor=0), nullable=True
            )
        },
        name="Custom",
    )


def rows_of(variant: str) -> DataFrame:
    spark = SparkSession.builder.getOrCreate()
    if variant == "wide":  # a column added and one retyped: schema drift
        df = spark.createDataFrame(GOOD_ROWS, COLUMNS)
        return df.withColumn("score", F.col("score").cast("float")).withColumn("extra", F.lit(1))
    return spark.createDataFrame(GOOD_ROWS if variant == "good" else BAD_ROWS, COLUMNS)


class People(Factory[DataFrame]):
    """People rows, good or bad as run config says."""

    class Config(dg.Config):
        variant: str = "good"

    config: Any = Config()
    validation: Any = Validation(person_schema())

    def read(self) -> Self:
        return self

    def process(self) -> Self:
        self.out = rows_of(self.config.variant)
        return self

    def write(self) -> Self:
        return self

    def get(self) -> DataFrame:
        return self.out


class PeopleCount(Factory[int]):
    """How many people: a consumer that records what it read."""

    people = Delivery[DataFrame](producer=People)

    def read(self) -> Self:
        self.df = self.people.get()
        return self

    def process(self) -> Self:
        self.n = self.df.where(F.col("id") >= 0).count()
        return self

    def write(self) -> Self:
        return self

    def get(self) -> int:
        return int(self.n)


def people_factories(validation: Validation | None) -> tuple[Factory[Any], Factory[Any]]:
    """People with the given validation (a subclass, so each test has its own declaration)."""
    people = type("People", (People,), {"validation": validation})
    consumer = type("PeopleCount", (PeopleCount,), {"people": Delivery[DataFrame](producer=people)})
    return people(), consumer()


def variant_config(variant: str, *, op: str = "people") -> dict[str, Any]:
    return {"ops": {op: {"config": {"variant": variant}}}}
