"""External inputs are observable source assets: a changed input file makes its Factories stale.

Real Dagster: an instance in a temp folder, the observation and the asset job executed, and
staleness computed by Dagster's own resolver (what the UI shows).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.definitions.observe import observe
from dagster._core.loader import LoadingContextForTest
from pyspark.sql import SparkSession

from pysetl_dagster import build_definitions, pysetl_pipeline
from tests.fixtures.inbox_pipeline import build_inbox_pipeline, write_csv

INBOX = dg.AssetKey("events_inbox")
TOTALS = dg.AssetKey("event_totals")


def _observe(defs: dg.Definitions, instance: dg.DagsterInstance) -> dict[dg.AssetKey, Any]:
    """Run the observation (the UI's "Observe sources") and return what it recorded."""
    observation = next(
        a for a in defs.resolve_asset_graph().assets_defs if a.is_observable and INBOX in a.keys
    )
    assert observation.node_def.name == "pysetl_inputs"
    result = observe([observation], instance=instance)
    assert result.success
    return {
        obs.asset_key: obs
        for obs in (
            e.asset_observation_data.asset_observation
            for e in result.get_asset_observation_events()
        )
    }


def _status(defs: dg.Definitions, instance: dg.DagsterInstance, key: dg.AssetKey) -> StaleStatus:
    """What the UI shows for `key` (a fresh resolver each time: it caches)."""
    graph = defs.resolve_asset_graph()
    resolver = CachingStaleStatusResolver(instance, graph, LoadingContextForTest(instance))
    return resolver.get_status(key)


def test_a_changed_input_file_makes_its_factories_stale(
    spark: SparkSession, tmp_path: Path, resources: dict[str, Any]
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_csv(inbox / "day1.csv", [("x", 1), ("y", 2)])
    defs = build_definitions(
        pysetl_pipeline(build_inbox_pipeline(inbox), name="inbox"), resources=resources
    )
    instance = dg.DagsterInstance.ephemeral()

    first = _observe(defs, instance)[INBOX]
    assert first.data_version is not None
    assert first.metadata["pysetl/fingerprint"].value == first.data_version

    assert defs.resolve_job_def("inbox_assets").execute_in_process(instance=instance).success
    assert _status(defs, instance, dg.AssetKey("load_events")) == StaleStatus.FRESH
    assert _status(defs, instance, TOTALS) == StaleStatus.FRESH

    # Observing an unchanged folder records the same version: nothing turns stale.
    assert _observe(defs, instance)[INBOX].data_version == first.data_version
    assert _status(defs, instance, TOTALS) == StaleStatus.FRESH

    write_csv(inbox / "day2.csv", [("x", 5)])
    second = _observe(defs, instance)[INBOX]
    assert second.data_version not in (None, first.data_version)
    # The Factory that reads the input is stale (Dagster does not mark further downstream
    # assets stale until LoadEvents has a new data version itself).
    assert _status(defs, instance, dg.AssetKey("load_events")) == StaleStatus.STALE

    # Materializing again takes in the new file and the Factories are fresh again.
    assert defs.resolve_job_def("inbox_assets").execute_in_process(instance=instance).success
    assert _status(defs, instance, dg.AssetKey("load_events")) == StaleStatus.FRESH
    assert _status(defs, instance, TOTALS) == StaleStatus.FRESH


def test_the_examples_inputs_are_observed_by_one_definition() -> None:
    import definitions

    graph = definitions.defs.resolve_asset_graph()
    observations = [a for a in graph.assets_defs if a.is_observable]
    assert len(observations) == 1  # `orders_csv` feeds two pipelines and is observed once
    keys = {k.to_user_string() for k in observations[0].keys}
    assert keys == {
        "orders_csv",
        "customers_csv",
        "products_csv",
        "returns_inbox",
        "europe/orders_csv",
        "europe/customers_csv",
        "americas/orders_csv",
        "americas/customers_csv",
    }
    # A linked input (another pipeline's Factory) stays that pipeline's asset, not a source.
    assert not graph.get(dg.AssetKey("enriched_orders")).is_observable
