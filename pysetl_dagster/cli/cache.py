"""`pysetl-dagster cache`: see what the cache holds and drop what should not be reused.

    pysetl-dagster cache list [-m definitions] [--storage ROOT]
    pysetl-dagster cache show clean_orders
    pysetl-dagster cache invalidate enriched_orders --downstream

`invalidate` keeps the data readable (consumers still load the current version) but no stored
version of the asset is reused again: its next materialization recomputes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import dagster as dg

from pysetl_dagster.storage.io_manager import SparkParquetIOManager
from pysetl_dagster.storage.store import PySetlStorage

if TYPE_CHECKING:
    from rich.console import Console

# rich is imported where a table is printed: `pysetl-dagster` registers this command's
# arguments on every invocation (describe, schema, migrate), which should not pay for it.


def add_parser(commands: Any) -> None:
    cache_cmd = commands.add_parser("cache", help="list, show and invalidate cached outputs")
    sub = cache_cmd.add_subparsers(dest="cache_command", required=True)
    for name, text in [
        ("list", "every asset's current stored version and its cache key"),
        ("show", "one asset's manifest and kept versions"),
        ("invalidate", "never reuse an asset's stored versions again (data stays readable)"),
    ]:
        cmd = sub.add_parser(name, help=text)
        if name != "list":
            cmd.add_argument("asset", help="asset key, e.g. clean_orders or prefix/name")
        if name == "invalidate":
            cmd.add_argument(
                "--downstream", action="store_true", help="also every asset that depends on it"
            )
        cmd.add_argument("-m", "--module", default="definitions", help="module with Definitions")
        cmd.add_argument("--storage", help="storage root (default: the module's io_manager)")


def _definitions(module_name: str) -> dg.Definitions:
    sys.path.insert(0, ".")
    module = importlib.import_module(module_name)
    for value in vars(module).values():
        if isinstance(value, dg.Definitions):
            return value
    raise SystemExit(f"error: module {module_name!r} defines no dagster Definitions")


def _storage(defs: dg.Definitions, explicit: str | None) -> PySetlStorage:
    """The storage resource: `--storage ROOT`, else the Definitions' (a `PySetlStorage`
    resource, or the store of its `SparkParquetIOManager`)."""
    resources = defs.resources or {}
    io_manager = resources.get("io_manager")
    if explicit:
        settings = io_manager.store if isinstance(io_manager, SparkParquetIOManager) else None
        if settings is None:
            return PySetlStorage(base_path=explicit)
        return PySetlStorage(
            base_path=explicit,
            keep_versions=settings.keep_versions,
            lease_timeout_seconds=settings.lease_timeout_seconds,
            filesystem=settings.filesystem,
        )
    if isinstance(io_manager, SparkParquetIOManager):
        return io_manager.store
    stores = [r for r in resources.values() if isinstance(r, PySetlStorage)]
    if len(stores) == 1:
        return stores[0]
    raise SystemExit(
        "error: the Definitions' io_manager is not a SparkParquetIOManager; pass --storage ROOT"
    )


def _when(timestamp: Any) -> str:
    if not timestamp:
        return "-"
    return dt.datetime.fromtimestamp(float(timestamp), dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _stored_keys(
    defs: dg.Definitions, storage: PySetlStorage
) -> Iterable[tuple[str, dg.AssetKey, str | None, dict[str, Any]]]:
    """(label, key, partition, manifest) of every stored output, partitions one by one."""
    for key in sorted(defs.resolve_asset_graph().get_all_asset_keys(), key=str):
        manifest = storage.current_manifest(key)
        if manifest is not None:
            yield key.to_user_string(), key, None, manifest
        for partition in storage.partitions(key):
            manifest = storage.current_manifest(key, partition)
            if manifest is not None:
                yield f"{key.to_user_string()} [{partition}]", key, partition, manifest


def _list(defs: dg.Definitions, storage: PySetlStorage, console: Console) -> int:
    from rich.table import Table

    table = Table(title=f"stored outputs under {storage.base_path}")
    for column in ("asset", "version", "rows", "computed", "by run", "cache key", "reusable"):
        table.add_column(column)
    for label, _key, _partition, manifest in _stored_keys(defs, storage):
        reusable = "no (invalidated)" if manifest.get("cache_invalidated_at") else "yes"
        if not manifest.get("cache_key"):
            reusable = "no (key incomplete: " + ", ".join(manifest.get("cache_missing") or {}) + ")"
        table.add_row(
            label,
            str(manifest["version"]),
            str(manifest.get("rows", "-")),
            _when(manifest.get("computed_at") or manifest.get("created_at")),
            str(manifest.get("computed_by_run") or manifest.get("run_id") or "-")[:8],
            str(manifest.get("cache_key") or "-"),
            reusable,
        )
    console.print(table)
    return 0


def _show(storage: PySetlStorage, key: dg.AssetKey) -> int:
    manifest = storage.current_manifest(key)
    if manifest is None:
        print(f"error: asset {key.to_user_string()!r} has nothing stored", file=sys.stderr)
        return 1
    shown = {k: v for k, v in manifest.items() if k not in {"schema", "previous_schema"}}
    print(json.dumps({"asset": key.to_user_string(), "current": shown}, indent=2, default=str))
    versions = [r.get("version") for r in storage.cache_records(key)]
    print(f"kept versions (newest first): {', '.join(str(v) for v in versions)}")
    return 0


def _downstream(defs: dg.Definitions, key: dg.AssetKey) -> list[dg.AssetKey]:
    graph = defs.resolve_asset_graph()
    found: list[dg.AssetKey] = []
    todo = [key]
    while todo:
        for child in sorted(graph.get(todo.pop()).child_keys, key=str):
            if child not in found:
                found.append(child)
                todo.append(child)
    return found


def _invalidate(
    defs: dg.Definitions, storage: PySetlStorage, key: dg.AssetKey, downstream: bool
) -> int:
    if key not in defs.resolve_asset_graph().get_all_asset_keys():
        print(f"error: no asset {key.to_user_string()!r} in these Definitions", file=sys.stderr)
        return 1
    keys = [key, *(_downstream(defs, key) if downstream else [])]
    for each in keys:
        partitions = storage.partitions(each)
        done = storage.invalidate(each) or bool(partitions)
        for partition in partitions:
            storage.invalidate(each, partition)
        state = "invalidated" if done else "nothing stored"
        extra = f" ({len(partitions)} partitions)" if partitions else ""
        print(f"{each.to_user_string()}: {state}{extra}")
    return 0


def _local_spark() -> None:
    """For a storage root only Spark's Hadoop client reaches (`hdfs://`, `s3a://`, ...): a
    small local session, no UI, no Spark job. Local paths and object stores pyarrow knows
    are listed with no JVM at all (see `pysetl_dagster.storage.store`)."""
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[1]")
        .appName("pysetl-dagster cache")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")


def run(args: argparse.Namespace) -> int:
    defs = _definitions(args.module)
    storage = _storage(defs, args.storage)
    if storage.backend() == "hadoop":
        _local_spark()
    from rich.console import Console

    console = Console()
    if args.cache_command == "list":
        return _list(defs, storage, console)
    key = dg.AssetKey.from_user_string(args.asset)
    if args.cache_command == "show":
        return _show(storage, key)
    return _invalidate(defs, storage, key, args.downstream)
