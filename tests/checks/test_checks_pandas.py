"""pandas and polars Factories: a pandera.pandas or pandera.polars schema is an asset check, and
a blocking pandas one the output's DagsterType (dagster-pandera)."""

from __future__ import annotations

from typing import Any, Self

import dagster as dg
import pandas as pd
import pandera.pandas as pa
import pandera.polars as ppl
import polars as pl
from pysetl.workflow import Factory, Pipeline, Stage

from pysetl_dagster import Validation, pysetl_pipeline


class Prices(pa.DataFrameModel):
    sku: str = pa.Field(str_matches=r"^SKU-\d+$")
    price: float = pa.Field(ge=0)


class PolarsPrices(ppl.DataFrameModel):
    sku: str = ppl.Field(str_matches=r"^SKU-\d+$")
    price: float = ppl.Field(ge=0)


GOOD = {"sku": ["SKU-1", "SKU-2"], "price": [1.5, 2.0]}
BAD = {"sku": ["SKU-1", "oops"], "price": [1.5, -2.0]}


class PriceList(Factory[pd.DataFrame]):
    """A small price list held in pandas."""

    class Config(dg.Config):
        bad: bool = False

    config: Any = Config()

    def read(self) -> Self:
        return self

    def process(self) -> Self:
        self.out = pd.DataFrame(BAD if self.config.bad else GOOD)
        return self

    def write(self) -> Self:
        return self

    def get(self) -> pd.DataFrame:
        return self.out


def _defs(blocking: bool, name: str) -> Any:
    factory = type("PriceList", (PriceList,), {"validation": Validation(Prices, blocking=blocking)})
    return pysetl_pipeline(Pipeline().add_stage(Stage().add_factory(factory())), name=name)


def _evaluation(result: Any) -> Any:
    (event,) = [e for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    return event.asset_check_evaluation_data


def test_pandas_schema_is_an_asset_check(resources: dict[str, Any]) -> None:
    defs = _defs(blocking=False, name="pandas_checks")
    good = dg.materialize(defs.assets, resources=resources)
    assert _evaluation(good).passed
    bad = dg.materialize(
        defs.assets,
        resources=resources,
        run_config={"ops": {"price_list": {"config": {"bad": True}}}},
    )
    assert bad.success  # non-blocking: published and reported
    evaluation = _evaluation(bad)
    assert not evaluation.passed and evaluation.metadata["failing_rows"].value == 2
    cases = {
        (r.data["column"], r.data["failure_case"])
        for r in evaluation.metadata["failure_cases"].records
    }
    assert cases == {("sku", "oops"), ("price", "-2.0")}


def test_blocking_pandas_schema_is_the_dagster_type(resources: dict[str, Any]) -> None:
    defs = _defs(blocking=True, name="pandas_typed")
    (assets_def,) = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]
    out_type = assets_def.op.outs["price_list"].dagster_type
    assert out_type.typing_type is pd.DataFrame and "Prices" in out_type.display_name
    good = dg.materialize(defs.assets, resources=resources)
    assert good.success
    type_checks = [e for e in good.all_events if e.event_type_value == "STEP_OUTPUT"]
    assert type_checks[0].step_output_data.type_check_data.success
    bad = dg.materialize(
        defs.assets,
        resources=resources,
        run_config={"ops": {"price_list": {"config": {"bad": True}}}},
        raise_on_error=False,
    )
    assert not bad.success and not bad.get_asset_materialization_events()
    assert not _evaluation(bad).passed


class PolarsPriceList(Factory[pl.DataFrame]):
    """The same price list held in polars."""

    class Config(dg.Config):
        bad: bool = False

    config: Any = Config()
    validation: Any = Validation(PolarsPrices)

    def read(self) -> Self:
        return self

    def process(self) -> Self:
        self.out = pl.DataFrame(BAD if self.config.bad else GOOD)
        return self

    def write(self) -> Self:
        return self

    def get(self) -> pl.DataFrame:
        return self.out


def test_polars_schema_is_an_asset_check(resources: dict[str, Any]) -> None:
    defs = pysetl_pipeline(
        Pipeline().add_stage(Stage().add_factory(PolarsPriceList())), name="polars_checks"
    )
    assert _evaluation(dg.materialize(defs.assets, resources=resources)).passed
    bad = dg.materialize(
        defs.assets,
        resources=resources,
        run_config={"ops": {"polars_price_list": {"config": {"bad": True}}}},
    )
    evaluation = _evaluation(bad)
    assert not evaluation.passed and evaluation.metadata["failing_rows"].value == 2
    records = evaluation.metadata["failure_cases"].records
    assert {(r.data["column"], r.data["failure_case"]) for r in records} == {
        ("sku", "oops"),
        ("price", "-2.0"),
    }
