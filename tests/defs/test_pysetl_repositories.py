"""Repositories registered on `PySetl` become upstream source assets of the Factories using them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import dagster as dg
from pysetl import PySetl
from pysetl.config import CsvConfig
from pysetl.storage.repository import SparkRepository
from pysetl.workflow import Delivery, Factory, Stage
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, StringType
from typedspark import Column, DataSet, Schema

from pysetl_dagster import SparkParquetIOManager, pysetl_pipeline


class City(Schema):
    name: Column[StringType]
    population: Column[IntegerType]


class BigCity(Schema):
    name: Column[StringType]


class BigCities(Factory[DataSet[BigCity]]):
    """Cities of a million people or more."""

    cities = Delivery[SparkRepository[City]]()

    def read(self) -> Self:
        self.src = self.cities.get().load()
        return self

    def process(self) -> Self:
        big = self.src.where(F.col("population") >= 1_000_000).select("name")
        self.out = DataSet[BigCity](big)
        return self

    def write(self) -> Self:
        return self

    def get(self) -> Any:
        return self.out


def test_spark_repository_from_config_is_a_source_asset(
    spark: SparkSession, tmp_path: Path, resources: dict[str, Any]
) -> None:
    csv = tmp_path / "cities.csv"
    csv.write_text("name,population\nLyon,522000\nTokyo,13960000\nLagos,15388000\n")
    config = {"cities": CsvConfig(storage="CSV", path=str(csv), inferSchema="true")}
    pysetl = PySetl.builder().set_spark_session(spark).set_config(config).build().get()
    pysetl.set_spark_repository_from_config(City, "cities")
    pipeline = pysetl.new_pipeline().add_stage(Stage().add_factory(BigCities()))

    defs = pysetl_pipeline(pipeline, name="cities")
    (source,) = defs.translated.external_specs.values()
    spec = defs.translated.factory_specs[defs.graph.nodes[0]]
    assert [d.asset_key for d in spec.deps] == [source.key]

    result = dg.materialize(defs.assets, resources=resources)
    assert result.success
    io: SparkParquetIOManager = resources["io_manager"]
    stored = spark.read.parquet(str(io.current_version_path(defs.asset_key(BigCities))))
    assert sorted(r["name"] for r in stored.collect()) == ["Lagos", "Tokyo"]
