"""The example pipeline under Dagster produces exactly what `Pipeline.run()` produces."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dagster as dg
from pyspark.sql import DataFrame, SparkSession

import definitions
from pysetl_dagster import SparkParquetIOManager
from pysetl_dagster.storage.caching import FORCE_TAG
from tests.conftest import assert_same_data


def _stored(resources: dict[str, Any], key: str) -> DataFrame:
    io: SparkParquetIOManager = resources["io_manager"]
    path = io.current_version_path(dg.AssetKey.from_user_string(key))
    return SparkSession.builder.getOrCreate().read.parquet(str(path))


def _spark_app_ids(events: Sequence[dg.DagsterEvent]) -> set[str]:
    return {
        str(e.step_materialization_data.materialization.metadata["spark/application_id"].value)
        for e in events
        if e.is_step_materialization
    }


def test_materialize_equals_native_run(
    native_outputs: dict[str, DataFrame], resources: dict[str, Any]
) -> None:
    result = dg.materialize(definitions.retail.assets, resources=resources)
    assert result.success
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == set(native_outputs)
    for key, expected in native_outputs.items():
        assert_same_data(_stored(resources, key), expected)
    # every materialization carries the metadata the UI shows
    event = next(
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == "enriched_orders"
    )
    meta = event.materialization.metadata
    assert {"path", "dagster/column_schema", "pysetl/read_s", "pysetl/process_s",
            "spark/application_id"} <= set(meta)  # fmt: skip
    # observed during the write (no Spark job of its own), and right
    assert meta["dagster/row_count"].value == native_outputs["enriched_orders"].count()
    # the example's schemas (three declared, the rest from typedspark) all pass
    checks = [e for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert len(checks) >= 40
    assert all(e.asset_check_evaluation_data.passed for e in checks)
    # one run, one SparkContext: every step reports the same Spark application
    assert len(_spark_app_ids(result.all_events)) == 1


def test_subset_runs_only_the_selected_factory(
    native_outputs: dict[str, DataFrame], resources: dict[str, Any]
) -> None:
    assert dg.materialize(definitions.retail.assets, resources=resources).success
    before = {
        key: resources["io_manager"].current_version_path(dg.AssetKey([key]))
        for key in ("enriched_orders", "top_products")
    }
    result = dg.materialize(
        definitions.retail.assets,
        resources=resources,
        selection="top_products",
        tags={FORCE_TAG: "top_products"},  # unchanged, so it would be reused otherwise
    )
    assert result.success
    assert [e.asset_key for e in result.get_asset_materialization_events()] == [
        dg.AssetKey("top_products")
    ]
    steps = {e.step_key for e in result.all_events if e.is_step_success}
    assert steps == {"top_products"}
    io = resources["io_manager"]
    assert io.current_version_path(dg.AssetKey("enriched_orders")) == before["enriched_orders"]
    assert io.current_version_path(dg.AssetKey("top_products")) != before["top_products"]
    assert_same_data(_stored(resources, "top_products"), native_outputs["top_products"])


def test_subset_without_stored_upstream_names_the_missing_asset(resources: dict[str, Any]) -> None:
    result = dg.materialize(
        definitions.retail.assets,
        resources=resources,
        selection="top_products",
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.to_string()
    assert "enriched_orders" in message and "Materialize it first" in message


def test_stage_job_equals_native_run(
    native_outputs: dict[str, DataFrame], resources: dict[str, Any], tmp_path: Path
) -> None:
    job = definitions.defs.resolve_job_def("retail_stages")
    assert [n for n in job.graph.node_names()] == [
        "retail__stage_0", "retail__stage_1", "retail__stage_2",
    ]  # fmt: skip
    assert "```mermaid" in (job.description or "")
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(resources=resources, instance=instance)
        assert result.success
        # the Stage job records each Factory's asset, after its output was written
        for key in native_outputs:
            record = instance.get_latest_materialization_event(dg.AssetKey.from_user_string(key))
            assert record is not None and record.run_id == result.run_id
    for key, expected in native_outputs.items():
        assert_same_data(_stored(resources, key), expected)
    assert len(_spark_app_ids(result.all_events)) == 1


def test_definitions_load_without_starting_spark() -> None:
    """Loading the example must not start a JVM: `dagster dev` loads code often."""
    import subprocess
    import sys

    code = (
        "import definitions, pyspark.sql as s; "
        "definitions.defs.resolve_all_job_defs(); "
        "print(s.SparkSession._instantiatedSession is None)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.strip().splitlines()[-1] == "True"
