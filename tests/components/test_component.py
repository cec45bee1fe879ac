"""PySetlPipelineComponent: the example through `dg`'s loader (and `dg list defs` at the
repository root) equals the Python API; the YAML attributes (pipeline references, templates,
params, key prefix, group, profile, storage, translation, schedules, sensors, Factory config)
reach the definitions; bad attributes fail naming the file and key."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster.components.testing import create_defs_folder_sandbox

from pysetl_dagster import PySetlDefinitionError, PySetlPipelineComponent
from tests.conftest import ROOT


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
    # and `dg list defs` from the repository root (dg.toml) shows the same, each definition
    # from a definitions/components/*/defs.yaml
    listed = _dg_list_defs(ROOT)
    assert {a["asset_key"] for a in listed["assets"]} == set(today["assets"])
    assert sorted(c["key"] for c in listed["asset_checks"]) == today["checks"]
    assert sorted(j["name"] for j in listed["jobs"]) == [
        j for j in today["jobs"] if not j.startswith("__")
    ]
    assert sorted(s["name"] for s in listed["schedules"]) == today["schedules"]
    assert sorted(s["name"] for s in listed["sensors"]) == today["sensors"]
    for kind in ("assets", "jobs", "schedules", "sensors"):
        for item in listed[kind]:
            source = item["source"] or ""
            assert re.match(r"definitions/components/\w+/defs\.yaml:\d+$", source), (kind, item)


def _dg_list_defs(project: Path) -> dict[str, Any]:
    """`dg list defs --json` run in `project`, parsed."""
    done = subprocess.run(
        [str(Path(sys.executable).with_name("dg")), "list", "defs", "--json"],
        cwd=project,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    listed: dict[str, Any] = json.loads(done.stdout[done.stdout.index("{") :])
    return listed


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
        # `--pipeline module:attribute` (your own code): only the defs.yaml, pointing at it
        path = sandbox.scaffold_component(
            PySetlPipelineComponent,
            defs_path="numbers",
            scaffold_params={"pipeline": "tests.fixtures.numbers_pipeline:build_numbers_pipeline"},
        )
        assert [p.name for p in path.iterdir()] == ["defs.yaml"]
        with sandbox.load_component_and_build_defs(defs_path=path) as (_, defs):
            keys = defs.resolve_asset_graph().get_all_asset_keys()
            assert {k.to_user_string() for k in keys} == {"numbers", "doubled", "total"}


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
        translation={  # each attribute for all Factories, then for one
            "owners": ["team:data"],
            "tags": {"factory": "{{ factory }}"},
            "kinds": ["warehouse"],
            "description": "{{ factory }}, stage {{ stage }}",
            "factories": {
                "Doubled": {
                    "description": "{{ factory }} in {{ pipeline }}",
                    "kinds": ["x2"],
                    "owners": ["ada@example.com"],
                    "tags": {"layer": "silver"},
                }
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
    assert "warehouse" in doubled.kinds and "warehouse" in numbers.kinds
    assert numbers.description == "Numbers, stage 0"
    assert doubled.owners == ["team:data", "ada@example.com"] and numbers.owners == ["team:data"]
    assert doubled.tags["layer"] == "silver" and "layer" not in numbers.tags
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


def test_templates_profiles_linked_pipelines_and_every_sensor_kind_from_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three components built together as `dg` builds a project: a template instance
    (`instance:` with `params`), a `profile:` with `profile_name:` (storage, Spark settings,
    schedules on), a pipeline reading another's output (`pipeline_params`), and the three
    sensor kinds; the `new_files` sensor's relative folder is found beside its defs.yaml."""
    monkeypatch.delenv("PYSETL_DAGSTER_STORAGE", raising=False)
    monkeypatch.delenv("PYSETL_DAGSTER_PROFILE", raising=False)
    monkeypatch.delenv("PYSETL_DAGSTER_PROFILE_FILE", raising=False)
    with create_defs_folder_sandbox() as sandbox:

        def component(folder: str, **attributes: Any) -> Path:
            return sandbox.scaffold_component(
                PySetlPipelineComponent,
                defs_path=folder,
                defs_yaml_contents={
                    "type": "pysetl_dagster.PySetlPipelineComponent",
                    "attributes": attributes,
                },
            )

        inbox = sandbox.defs_folder_path / "inbox"
        (inbox / "drop").mkdir(parents=True)
        (inbox / "profiles.yaml").write_text(
            "base:\n  spark: {config: {spark.sql.shuffle.partitions: '3'}}\n"
            "dev: {}\n"
            f"staging:\n  storage: {{root: '{tmp_path / 'staging'}'}}\n"
            "  schedules: {enabled: true}\n"
        )
        component(
            "inbox",
            pipeline="tests.fixtures.inbox_pipeline:build_inbox_pipeline",
            params={"folder": str(inbox / "drop")},
            profile="profiles.yaml",
            profile_name="staging",
            schedules=[{"cron": "0 1 * * *"}],
            sensors=[{"kind": "new_files", "folder": "drop", "settle_seconds": 0, "running": True}],
        )
        component(
            "report",
            pipeline="tests.fixtures.inbox_pipeline:build_report_pipeline",
            pipeline_params={"upstream": "inbox"},
            sensors=[
                {"kind": "upstream"},
                {"kind": "failure", "hook": "tests.fixtures.component_refs:record_failure",
                 "name": "report_alerts"},
            ],
        )  # fmt: skip
        component(
            "archive",
            pipeline="tests.fixtures.component_refs:inbox_template",
            instance="archive",
            params={"folder": str(tmp_path / "archive")},
            stage_job=False,
        )
        with sandbox.build_all_defs() as defs:
            graph = defs.resolve_asset_graph()
            keys = graph.get_all_asset_keys()
            groups = {k.to_user_string(): graph.get(k).group_name for k in keys}
            jobs = {j.name for j in defs.resolve_all_job_defs()}
            schedules = {s.name: s for s in defs.schedules or []}
            sensors = {s.name: s for s in defs.sensors or []}
            # the template instance: pipeline <template>_<instance>, keys prefixed, no stage job
            archive = {groups["archive/load_events"], groups["archive/event_totals"]}
            assert archive == {"inbox_archive"}
            assert "inbox_archive_assets" in jobs and "inbox_archive_stages" not in jobs
            # the linked pipeline reads inbox's asset; inbox's own assets stay in its group
            assert groups["totals_report"] == "report" and groups["event_totals"] == "inbox"
            assert graph.get(dg.AssetKey("totals_report")).parent_keys == {
                dg.AssetKey("event_totals")
            }
            # the profile: its storage root, its Spark settings, its schedules switched on
            resources = defs.resources or {}
            assert resources["io_manager"].base_path == str(tmp_path / "staging")
            assert resources["pyspark"].spark_config == {"spark.sql.shuffle.partitions": "3"}
            assert schedules["inbox_schedule"].default_status == dg.DefaultScheduleStatus.RUNNING
            assert set(sensors) == {"inbox_new_files", "report_on_upstream", "report_alerts"}
            assert sensors["inbox_new_files"].default_status == dg.DefaultSensorStatus.RUNNING
            assert sensors["report_on_upstream"].default_status == dg.DefaultSensorStatus.STOPPED
            assert isinstance(sensors["report_alerts"], dg.RunStatusSensorDefinition)
            # a file dropped beside the defs.yaml (folder: drop) makes the sensor ask for a run
            (inbox / "drop" / "a.csv").write_text("kind,amount\nx,1\n")
            with dg.instance_for_test() as instance:
                context = dg.build_sensor_context(instance=instance, definitions=defs)
                result = sensors["inbox_new_files"].evaluate_tick(context)
            (request,) = result.run_requests or []
            assert dg.AssetKey("load_events") in (request.asset_selection or [])


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
                "sensors": [{"kind": "failure", "hook": "tests.fixtures.component_refs:nope"}],
            },
            "attributes.sensors",
            "has no attribute 'nope'",
        ),
        (
            {"pipeline": "tests.fixtures.component_refs:inbox_template", "params": {"folder": "x"}},
            "attributes.pipeline",
            "add `instance: <key>`",
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
