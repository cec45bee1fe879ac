"""PySetlPipelineComponent: the example through `dg`'s loader equals the Python API, and the
YAML attributes (key prefix, group, translation, schedules, sensors, Factory config) reach the
definitions; bad attributes fail naming the file and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster.components.testing import create_defs_folder_sandbox

from pysetl_dagster import PySetlDefinitionError, PySetlPipelineComponent


def _summary(defs: dg.Definitions) -> dict[str, Any]:
    graph = defs.resolve_asset_graph()
    return {
        "assets": {
            k.to_user_string(): (
                graph.get(k).group_name,
                sorted(p.to_user_string() for p in graph.get(k).parent_keys),
                str(graph.get(k).metadata.get("path")),  # an external input's file
            )
            for k in graph.get_all_asset_keys()
        },
        "checks": sorted(k.to_user_string() for k in graph.asset_check_keys),
        "jobs": sorted(j.name for j in defs.resolve_all_job_defs()),
        "schedules": sorted(s.name for s in defs.schedules or []),
        "sensors": sorted(s.name for s in defs.sensors or []),
    }


def test_the_example_loaded_through_the_component_equals_the_python_api() -> None:
    import importlib

    import definitions
    from definitions.dg_definitions import defs as component_defs

    # built now, from the same environment as the component path (an earlier test of the
    # session may have imported the package under other settings, e.g. another data folder)
    today = _summary(importlib.reload(definitions).defs)
    through_components = _summary(component_defs())
    assert through_components == today
    # the example is not trivially small: every kind of definition is there
    assert len(today["assets"]) > 20 and len(today["checks"]) > 20
    assert {"retail_daily", "daily_orders_latest_partition"} <= set(today["schedules"])
    assert {"retail_on_failure", "returns_new_files", "returns_on_upstream"} <= set(
        today["sensors"]
    )


def _build(tmp_path: Path, **attributes: Any) -> dg.Definitions:
    """One component, from its defs.yaml, built as dg builds it (dagster's test sandbox)."""
    with create_defs_folder_sandbox() as sandbox:
        path = sandbox.scaffold_component(
            PySetlPipelineComponent,
            defs_path="orders",
            defs_yaml_contents={
                "type": "pysetl_dagster.PySetlPipelineComponent",
                "attributes": attributes,
            },
        )
        with sandbox.load_component_and_build_defs(defs_path=path) as (_, defs):
            defs.resolve_asset_graph()  # while the sandbox's modules are importable
            return defs


def test_the_scaffolded_sample_builds(tmp_path: Path) -> None:
    """What `dg scaffold defs pysetl_dagster.PySetlPipelineComponent orders` writes loads:
    a Factory module, its pipeline (a `.pipeline:build_pipeline` reference) and defs.yaml."""
    with create_defs_folder_sandbox() as sandbox:
        path = sandbox.scaffold_component(PySetlPipelineComponent, defs_path="orders")
        assert sorted(p.name for p in path.iterdir()) == [
            "data",
            "defs.yaml",
            "orders_records.py",
            "pipeline.py",
        ]
        with sandbox.load_component_and_build_defs(defs_path=path) as (component, defs):
            assert isinstance(component, PySetlPipelineComponent)
            graph = defs.resolve_asset_graph()
            records = graph.get(dg.AssetKey("orders_records"))
            assert records.tags["pipeline"] == "orders" and "csv" in records.kinds
            assert any(k.name == "amount__greater_than_or_equal_to" for k in graph.asset_check_keys)
            assert [s.name for s in defs.schedules or []] == ["orders_daily"]


def test_yaml_attributes_reach_the_assets_jobs_schedules_and_sensors(tmp_path: Path) -> None:
    defs = _build(
        tmp_path,
        pipeline="tests.fixtures.numbers_pipeline:build_numbers_pipeline",
        key_prefix="wh",
        group="numbers",
        storage_root=str(tmp_path / "store"),
        factory_config={"Numbers": {"n": 5}},
        schedules=[{"cron": "30 4 * * *", "timezone": "Europe/Paris", "name": "nightly"}],
        sensors=[{"kind": "failure", "webhook_url_env": "ALERT_URL"}],
        translation={
            "owners": ["team:data"],
            "tags": {"factory": "{{ factory }}"},
            "factories": {
                "Doubled": {"description": "{{ factory }} in {{ pipeline }}", "kinds": ["x2"]}
            },
        },
    )
    graph = defs.resolve_asset_graph()
    doubled = graph.get(dg.AssetKey(["wh", "doubled"]))
    numbers = graph.get(dg.AssetKey(["wh", "numbers"]))
    assert doubled.group_name == numbers.group_name == "numbers"
    assert doubled.description == "Doubled in orders"  # the folder names the pipeline
    assert doubled.tags["factory"] == "Doubled" and numbers.tags["factory"] == "Numbers"
    assert "x2" in doubled.kinds and "pyspark" in doubled.kinds and "x2" not in numbers.kinds
    assert doubled.owners == ["team:data"]
    assert {j.name for j in defs.resolve_all_job_defs()} >= {"orders_assets", "orders_stages"}
    (schedule,) = defs.schedules or []
    assert isinstance(schedule, dg.ScheduleDefinition)
    assert (schedule.name, schedule.cron_schedule, schedule.execution_timezone) == (
        "nightly",
        "30 4 * * *",
        "Europe/Paris",
    )
    assert [s.name for s in defs.sensors or []] == ["orders_on_failure"]
    (asset_job,) = [j for j in defs.jobs or [] if j.name == "orders_assets"]
    assert asset_job.config == {"ops": {"wh__numbers": {"config": {"n": 5}}}}  # type: ignore[union-attr]
    io_manager = (defs.resources or {})["io_manager"]
    assert io_manager.base_path == str(tmp_path / "store")


@pytest.mark.parametrize(
    ("attributes", "key", "says"),
    [
        ({"pipeline": "tests.fixtures.nothing_here:build"}, "attributes.pipeline", "cannot import"),
        (
            {"pipeline": "tests.fixtures.numbers_pipeline"},
            "attributes.pipeline",
            "module:attribute",
        ),
        (
            {
                "pipeline": "tests.fixtures.numbers_pipeline:build_numbers_pipeline",
                "params": {"n": 3},
            },
            "attributes.params",
            "does not accept",
        ),
        (
            {
                "pipeline": "tests.fixtures.numbers_pipeline:build_numbers_pipeline",
                "factory_config": {"Nope": {}},
            },
            "attributes.factory_config",
            "no Factory 'Nope'",
        ),
    ],
)
def test_a_bad_attribute_names_the_file_and_key(
    tmp_path: Path, attributes: dict[str, Any], key: str, says: str
) -> None:
    with pytest.raises(Exception) as raised:  # dg wraps it, naming the component
        _build(tmp_path, **attributes)
    error: BaseException | None = raised.value
    while error is not None and not isinstance(error, PySetlDefinitionError):
        error = error.__cause__
    assert error is not None, raised.value
    message = str(error)
    assert "orders/defs.yaml" in message
    assert key in message and says in message
