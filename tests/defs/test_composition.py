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
from tests.fixtures.translators import PositiveNumbers


def test_rebuilding_a_pipeline_gives_equal_definitions_kept_once() -> None:
    first = pysetl_pipeline(build_numbers_pipeline(), name="numbers")
    again = pysetl_pipeline(build_numbers_pipeline(), name="numbers")
    # each build owns its definitions (no module-level cache hands one build another's)
    assert not any(a is b for a, b in zip(first.assets, again.assets, strict=True))
    assert first.signatures == again.signatures
    defs = build_definitions(first, again, storage_path="unused")
    defs.resolve_all_job_defs()
    assert {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()} == {
        "numbers", "doubled", "total",
    }  # fmt: skip


def _check_names(assets: list[Any], key: str) -> set[str]:
    (asset,) = [
        a for a in assets if isinstance(a, dg.AssetsDefinition) and dg.AssetKey(key) in a.keys
    ]
    return {check.name for check in asset.check_specs}


def test_each_pipeline_gets_its_own_asset_with_its_own_checks(resources: Any) -> None:
    plain = pysetl_pipeline(build_numbers_pipeline(), name="plain")
    checked = pysetl_pipeline(
        build_numbers_pipeline(), name="checked", translator=PositiveNumbers()
    )
    assert "value__greater_than_or_equal_to" in _check_names(checked.assets, "numbers")
    assert "value__greater_than_or_equal_to" not in _check_names(plain.assets, "numbers")
    # built the other way round, each still has its own checks
    again = pysetl_pipeline(build_numbers_pipeline(), name="plain")
    assert "value__greater_than_or_equal_to" not in _check_names(again.assets, "numbers")
    # materialized, the checked pipeline's asset evaluates its own check
    result = dg.materialize(
        checked.assets, resources=resources, selection=["numbers"], raise_on_error=True
    )
    evaluations = {e.check_name for e in result.get_asset_check_evaluations()}
    assert "value__greater_than_or_equal_to" in evaluations
    # one Definitions cannot hold both: the same key, defined differently
    with pytest.raises(PySetlDefinitionError, match=r"'numbers' is defined differently"):
        build_definitions(plain, checked, storage_path="unused")


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


def test_a_pipeline_on_another_io_manager_key_gets_its_storage(spark: Any, tmp_path: Any) -> None:
    """`io_manager_key` is honoured everywhere: the assets, the Stage job, the step and the
    resources build_definitions provides."""
    numbers = pysetl_pipeline(build_numbers_pipeline(), name="keyed", io_manager_key="warehouse")
    defs = build_definitions(numbers, storage_path=str(tmp_path / "storage"))
    for job in ("keyed_assets", "keyed_stages"):
        result = defs.resolve_job_def(job).execute_in_process()
        assert result.success
    total = result.output_for_node("keyed__stage_2", "total")
    assert total.published and "storage" in str(total.path)
