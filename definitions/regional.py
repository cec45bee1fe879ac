"""Composition in the example: a pipeline template instantiated per region, and a daily
partitioned Factory.

* `regional_europe` / `regional_americas`: one template (`build_regional_pipeline`), two
  instances with their own key prefix (`europe/...`, `americas/...`), asset group, jobs, countries
  and Factory config (`min_quantity`). They reuse the retail Factories CleanOrders and
  CleanCustomers, under their own keys.
* `daily_orders`: `DailyOrders` is partitioned by day (`partitions = daily(...)`, 2024 as in the
  sample data) and reads the shared `clean_orders`; `OrdersPerDay` (unpartitioned) reads every
  stored day. Backfill days from the UI (asset `daily_orders` > Materialize > select
  partitions); the `daily_orders_latest_partition` schedule runs yesterday's partition.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import dagster as dg
from pysetl.workflow import Deliverable, Delivery, Factory, Pipeline, Stage
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, IntegerType, LongType, StringType
from typedspark import Column, DataSet, Schema

from pysetl_dagster import daily, pysetl_pipeline, pysetl_template

from .retail.factories import CleanCustomers, CleanOrders
from .retail.pipeline import input_sources
from .retail.schemas import (
    CUSTOMERS_CSV,
    ORDERS_CSV,
    CleanCustomerDataSet,
    CleanOrderDataSet,
    CsvSource,
)

EUROPE = ("France", "Germany", "Spain", "United Kingdom")
AMERICAS = ("United States", "Canada", "Brazil")


class RegionOrder(Schema):
    """An order of a customer of the region."""

    order_id: Column[LongType]
    order_date: Column[DateType]
    country: Column[StringType]
    quantity: Column[IntegerType]


class RegionOrders(Factory[DataSet[RegionOrder]]):
    """Orders of the customers of one region (the template's parameter), at least
    `min_quantity` units each (the instance's config)."""

    orders = Delivery[CleanOrderDataSet]()
    customers = Delivery[CleanCustomerDataSet]()

    class Config(dg.Config):
        min_quantity: int = 1

    config: Any = Config()

    def __init__(self, countries: Sequence[str] = ()) -> None:
        super().__init__()
        self.countries = tuple(countries)

    def read(self) -> Self:
        return self

    def process(self) -> Self:
        customers = self.customers.get().select("customer_id", "country")
        joined = self.orders.get().join(customers, "customer_id")
        self.out = DataSet[RegionOrder](
            joined.where(
                F.col("country").isin(*self.countries)
                & (F.col("quantity") >= self.config.min_quantity)
            ).select("order_id", "order_date", "country", "quantity")
        )
        return self

    def write(self) -> Self:
        return self

    def get(self) -> DataSet[RegionOrder]:
        return self.out


def build_regional_pipeline(countries: Sequence[str], data_dir: str | None = None) -> Pipeline:
    """The template: cleaned orders and customers, then the region's orders."""
    pipeline = Pipeline()
    for deliverable in _inputs(data_dir):
        pipeline.set_input_from_deliverable(deliverable)
    return pipeline.add_stage(
        Stage().add_factory(CleanOrders()).add_factory(CleanCustomers())
    ).add_stage(Stage().add_factory(RegionOrders(countries)))


def _inputs(data_dir: str | None) -> list[Deliverable[CsvSource]]:
    """The orders and customers CSVs, as the retail pipeline registers them."""
    sources = input_sources(data_dir)
    return [
        Deliverable[CsvSource](sources[delivery_id], delivery_id=delivery_id)
        for delivery_id in (ORDERS_CSV, CUSTOMERS_CSV)
    ]


class DayOrder(Schema):
    """A cleaned order of one day."""

    order_id: Column[LongType]
    order_date: Column[DateType]
    quantity: Column[IntegerType]


class DayCount(Schema):
    """Orders and units per stored day."""

    order_date: Column[DateType]
    orders: Column[LongType]
    units: Column[LongType]


class DailyOrders(Factory[DataSet[DayOrder]]):
    """The cleaned orders of one day: the run's partition (`self.partition_key`)."""

    partitions = daily("2024-01-01", end="2025-01-01")
    clean_orders = Delivery[CleanOrderDataSet]()
    partition_key: str

    def read(self) -> Self:
        return self

    def process(self) -> Self:
        orders = self.clean_orders.get()
        self.out = DataSet[DayOrder](
            orders.where(F.col("order_date") == F.to_date(F.lit(self.partition_key))).select(
                "order_id", "order_date", "quantity"
            )
        )
        return self

    def write(self) -> Self:
        return self

    def get(self) -> DataSet[DayOrder]:
        return self.out


class OrdersPerDay(Factory[DataSet[DayCount]]):
    """Orders and units of every day stored so far (reads all partitions of daily_orders)."""

    daily_orders = Delivery[DataSet[DayOrder]]()

    def read(self) -> Self:
        return self

    def process(self) -> Self:
        self.out = DataSet[DayCount](
            self.daily_orders.get()
            .groupBy("order_date")
            .agg(
                F.count(F.lit(1)).alias("orders"),
                F.sum("quantity").cast("long").alias("units"),
            )
        )
        return self

    def write(self) -> Self:
        return self

    def get(self) -> DataSet[DayCount]:
        return self.out


def build_daily_orders_pipeline(data_dir: str | None = None) -> Pipeline:
    pipeline = Pipeline()
    for deliverable in _inputs(data_dir)[:1]:
        pipeline.set_input_from_deliverable(deliverable)
    return (
        pipeline.add_stage(Stage().add_factory(CleanOrders()))
        .add_stage(Stage().add_factory(DailyOrders()))
        .add_stage(Stage().add_factory(OrdersPerDay()))
    )


def regional_pipelines(data_dir: str | None = None) -> list[Any]:
    """The template's two instances and the daily-partitioned pipeline, for `Definitions`."""
    regional = pysetl_template(build_regional_pipeline, name="regional")
    europe = regional.instance(
        "europe", countries=EUROPE, data_dir=data_dir, factory_config={RegionOrders: {}}
    )
    americas = regional.instance(
        "americas",
        countries=AMERICAS,
        data_dir=data_dir,
        factory_config={RegionOrders: {"min_quantity": 2}},
    )
    daily_orders = pysetl_pipeline(build_daily_orders_pipeline(data_dir), name="daily_orders")
    daily_orders.latest_partition_schedule(hour_of_day=3)
    return [europe, americas, daily_orders]
