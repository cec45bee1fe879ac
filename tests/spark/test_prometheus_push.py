"""Run metrics pushed to a real Pushgateway (Debian's `prometheus-pushgateway`, started once per
test session on a free loopback port by `tests/fixtures/prod_stack.py`) by the run-status sensor
`prometheus_sensors` builds. The daemon doing it by itself is in test_deploy.py."""

from __future__ import annotations

import urllib.request
from typing import Any

import dagster as dg
from prometheus_client.parser import text_string_to_metric_families

from pysetl_dagster import pysetl_pipeline
from pysetl_dagster.spark.prometheus import prometheus_sensors
from tests.fixtures.numbers_pipeline import build_numbers_pipeline, numbers_config


def pushed_metrics(address: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(f"http://{address}/metrics", timeout=10).read().decode()
    return {
        (s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k != "instance"))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("pysetl_")
    }


def test_run_status_sensor_pushes_the_run_metrics(
    pushgateway: str, resources: dict[str, Any]
) -> None:
    instance = dg.DagsterInstance.ephemeral()
    assets = pysetl_pipeline(build_numbers_pipeline(), name="pushed").assets
    result = dg.materialize(
        assets, resources=resources, run_config=numbers_config(5), instance=instance
    )
    assert result.success
    on_success = next(s for s in prometheus_sensors(pushgateway) if s.name.endswith("_success"))
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    event = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_SUCCESS)
    context = dg.build_run_status_sensor_context(
        sensor_name=on_success.name, dagster_instance=instance, dagster_run=run, dagster_event=event
    )
    on_success(context)  # the sensor's body, as the daemon calls it after the run
    samples = pushed_metrics(pushgateway)
    labels = (("dagster_job", "__ephemeral_asset_job__"), ("job", "pysetl_dagster"))
    assert samples[("pysetl_run_success", labels)] == 1
    rows = {dict(k[1])["asset"]: v for k, v in samples.items() if k[0] == "pysetl_asset_rows"}
    # the session's Pushgateway is shared (the production stack's daemon pushes too)
    assert {k: rows.get(k) for k in ("numbers", "doubled", "total")} == {
        "numbers": 5, "doubled": 5, "total": 1,
    }  # fmt: skip
