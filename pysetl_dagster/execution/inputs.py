"""Inputs read from another pipeline at run time: a linked input (`pipeline.output(...)`)
is replaced by the upstream asset's current stored version, read through the store with its
manifest's schema, and its manifest feeds the consumer's cache key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyspark.sql import SparkSession

from pysetl_dagster.errors import PySetlDefinitionError
from pysetl_dagster.spark.labels import asset_scope
from pysetl_dagster.storage.io_manager import SparkParquetIOManager
from pysetl_dagster.storage.store import PySetlStorage
from pysetl_dagster.translation.links import UpstreamAsset


def resolve_links(
    values: Mapping[str, Any], storage: Any, spark: SparkSession, *, run_id: str, label: str
) -> dict[str, Any]:
    """Replace each linked input by the upstream asset's current stored version, read through
    the storage (its manifest gives the version and the schema: no inference job).

    `storage` is the step's IO manager (a `SparkParquetIOManager`, whose `store` is used) or a
    `PySetlStorage`."""
    resolved = dict(values)
    for attribute, value in values.items():
        if not isinstance(value, UpstreamAsset):
            continue
        store = _store_of(storage)
        if store is None:
            raise PySetlDefinitionError(
                f"{label}.{attribute} reads {value.key.to_user_string()!r} of pipeline "
                f"{value.pipeline!r}, which needs the SparkParquetIOManager as io_manager "
                f"(found {type(storage).__name__})."
            )
        name = value.key.to_user_string()
        path, manifest = store.current(store.asset_dir(value.key), f"Asset {name}")
        if manifest.get("format", "parquet") == "parquet":
            with asset_scope(spark, run_id, label, f"load {name}"):
                resolved[attribute] = store.read_version(path, manifest.get("schema"))
        else:
            resolved[attribute] = store.read_pickle(path, name)
    return resolved


def _store_of(storage: Any) -> PySetlStorage | None:
    if isinstance(storage, SparkParquetIOManager):
        return storage.store
    return storage if isinstance(storage, PySetlStorage) else None


def linked_manifests(values: Mapping[str, Any], storage: Any) -> dict[str, Any]:
    """The current manifest of each linked input (its data version feeds the cache key)."""
    store = _store_of(storage)
    if store is None:
        return {}
    return {
        attribute: store.current_manifest(value.key)
        for attribute, value in values.items()
        if isinstance(value, UpstreamAsset)
    }
