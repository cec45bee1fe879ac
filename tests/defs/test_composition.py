"""Several pipelines in one Definitions; the same Factory in two pipelines is one asset."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pytest
from pysetl.workflow import Pipeline, Stage

import definitions
from pysetl_dagster import (
    PySetlDefinitionError,
    PySetlTranslator,
    build_definitions,
    pysetl_pipeline,
)
from tests.fixtures.numbers_pipeline import Doubled, Numbers, Total, build_numbers_pipeline


def test_rebuilding_a_pipeline_reuses_its_definitions() -> None:
    first = pysetl_pipeline(build_numbers_pipeline(), name="numbers")
    again = pysetl_pipeline(build_numbers_pipeline(), name="numbers")
    assert all(a is b for a, b in zip(first.assets, again.assets, strict=True))
    build_definitions(first, again, storage_path="unused").resolve_all_job_defs()


def test_a_factory_shared_by_two_pipelines_is_one_asset(spark: Any, resources: Any) -> None:
    short = (
        Pipeline()
        .add_stage(Stage().add_factory(Numbers()))
        .add_stage(Stage().add_factory(Doubled()))
    )
    full = pysetl_pipeline(build_numbers_pipeline(), name="full")
    part = pysetl_pipeline(short, name="part")
    defs = build_definitions(full, part, storage_path="unused", resources=resources)
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == {
        "numbers", "doubled", "total",
    }  # fmt: skip
    for job in ("full_assets", "full_stages", "part_assets", "part_stages"):
        defs.resolve_job_def(job)
    result = defs.resolve_job_def("part_assets").execute_in_process()
    assert result.success
    assert {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()} == {
        "numbers", "doubled",
    }  # fmt: skip


def test_conflicting_definitions_of_one_key_name_both_pipelines() -> None:
    class Other(Total):
        """Another Factory that the translator maps onto `doubled`'s key."""

    class Collide(PySetlTranslator):
        def get_asset_spec(self, data: Any) -> dg.AssetSpec:
            spec = super().get_asset_spec(data)
            if spec.key == dg.AssetKey("other"):
                return spec.replace_attributes(key=dg.AssetKey("total"))
            return spec

    one = pysetl_pipeline(build_numbers_pipeline(), name="one")
    pipeline = build_numbers_pipeline()
    pipeline.stages[-1].clear_registry().add_factory(Other())
    two = pysetl_pipeline(pipeline, name="two", translator=Collide())
    with pytest.raises(
        PySetlDefinitionError,
        match=r"'total' is defined differently by pipelines 'one' and 'two'.*key_prefix",
    ):
        build_definitions(one, two, storage_path="unused")


def test_key_prefix_keeps_two_instances_of_a_template_apart() -> None:
    a = pysetl_pipeline(build_numbers_pipeline(), name="a", translator=PySetlTranslator("a"))
    b = pysetl_pipeline(build_numbers_pipeline(), name="b", translator=PySetlTranslator("b"))
    keys = build_definitions(a, b, storage_path="unused").resolve_asset_graph().get_all_asset_keys()
    assert {k.to_user_string() for k in keys} == {
        "a/numbers", "a/doubled", "a/total", "b/numbers", "b/doubled", "b/total",
    }  # fmt: skip


def test_example_has_a_daily_schedule_on_its_asset_job() -> None:
    schedule = definitions.defs.resolve_schedule_def("retail_daily")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.job_name == "retail_assets"
