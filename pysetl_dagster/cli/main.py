"""`pysetl-dagster`: inspect how a project's PySetl pipelines map to Dagster.

pysetl-dagster describe -m definitions      # every pipeline the module defines
pysetl-dagster describe -m definitions --mermaid
pysetl-dagster schema infer clean_orders -m definitions [--format yaml] [--out FILE]
pysetl-dagster migrate legacy_jobs/ --out migrated/ --verify   # scripts -> Factories
pysetl-dagster cache list|show ASSET|invalidate ASSET [--downstream]
pysetl-dagster init my_project            # a runnable project (see cli/scaffold.py)
pysetl-dagster new factory EnrichOrders   # a Factory skeleton and its test
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from pysetl_dagster.defs.pipeline import PySetlPipelineDefinitions
from pysetl_dagster.errors import PySetlDefinitionError
from pysetl_dagster.translation.graph import ExternalInput, FactoryNode


def _pipelines_of(module_name: str) -> list[PySetlPipelineDefinitions]:
    sys.path.insert(0, ".")
    module = importlib.import_module(module_name)
    return [v for v in vars(module).values() if isinstance(v, PySetlPipelineDefinitions)]


def describe(pipeline: PySetlPipelineDefinitions, mermaid: bool = False) -> str:
    translated = pipeline.translated
    lines = [f"pipeline {pipeline.name}: jobs {pipeline.name}_assets, {pipeline.name}_stages"]
    for ext, spec in translated.external_specs.items():
        lines.append(f"  external {ext.name:<28} -> {spec.key.to_user_string()}")
    for node, spec in translated.factory_specs.items():
        sources = []
        for resolved in translated.graph.inputs[node]:
            source: FactoryNode | ExternalInput = resolved.source
            sources.append(f"{resolved.attribute}<-{translated.key_of(source).to_user_string()}")
        stage = "-" if node.stage_index is None else str(node.stage_index)
        lines.append(
            f"  stage {stage} {node.name:<24} -> {spec.key.to_user_string():<28} "
            + ", ".join(sources)
        )
    if mermaid:
        lines += ["", pipeline.diagram]
    return "\n".join(lines)


def _storage_of(module_name: str) -> str:
    """The storage root of the module's `Definitions` (its `io_manager`), else the default."""
    import dagster as dg

    from pysetl_dagster.defs.build import default_storage_path
    from pysetl_dagster.storage.io_manager import SparkParquetIOManager

    module = importlib.import_module(module_name)
    for value in vars(module).values():
        if isinstance(value, dg.Definitions):
            io_manager = (value.resources or {}).get("io_manager")
            if isinstance(io_manager, SparkParquetIOManager):
                return io_manager.base_path
    return default_storage_path()


def infer_schema(args: argparse.Namespace) -> int:
    """Write a pandera schema inferred from an asset's current stored version."""
    import dagster as dg
    from pyspark.sql import SparkSession

    from pysetl_dagster.checks.infer import model_source, profile, schema_yaml
    from pysetl_dagster.defs.profiles import SPARK_REMOTE_ENV
    from pysetl_dagster.errors import PySetlStorageError
    from pysetl_dagster.storage.store import PySetlStorage

    sys.path.insert(0, ".")
    storage = PySetlStorage(base_path=args.storage or _storage_of(args.module))
    key = dg.AssetKey.from_user_string(args.asset)
    # the session comes first: profiling needs it, and the storage then uses its Hadoop client
    remote = os.environ.get(SPARK_REMOTE_ENV, "").strip()
    if remote and remote != "classic":
        # the server `scripts/dev` started (or any other): no JVM in this process
        print(f"Spark Connect session on {remote}", file=sys.stderr)
        spark = SparkSession.builder.remote(remote).getOrCreate()
    else:
        spark = (
            SparkSession.builder.master("local[2]").appName("pysetl-dagster schema").getOrCreate()
        )
        spark.sparkContext.setLogLevel("ERROR")
    manifest = storage.current_manifest(key)
    if manifest is None or manifest.get("format") != "parquet":
        raise PySetlStorageError(
            f"Asset {args.asset!r} has no stored Spark output under {storage.base_path}. "
            "Materialize it first (or pass --storage PATH)."
        )
    df = storage.read_version(storage.asset_dir(key) / manifest["version"], manifest.get("schema"))
    profiles = profile(df, args.max_categories)
    name = key.path[-1]
    text = schema_yaml(profiles, name) if args.format == "yaml" else model_source(profiles, name)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)
        print(f"wrote {args.out} ({len(profiles)} columns)", file=sys.stderr)
    else:
        print(text)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pysetl-dagster", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    describe_cmd = commands.add_parser("describe", help="print pipelines, assets and wiring")
    describe_cmd.add_argument("-m", "--module", required=True, help="module defining pipelines")
    describe_cmd.add_argument("--mermaid", action="store_true", help="also print the diagrams")
    schema_cmd = commands.add_parser("schema", help="pandera schemas of stored outputs")
    schema_commands = schema_cmd.add_subparsers(dest="schema_command", required=True)
    infer_cmd = schema_commands.add_parser(
        "infer", help="infer a pandera model from an asset's stored output (one Spark pass)"
    )
    infer_cmd.add_argument("asset", help="asset key, e.g. clean_orders or prefix/name")
    infer_cmd.add_argument("-m", "--module", default="definitions", help="module with Definitions")
    infer_cmd.add_argument("--storage", help="storage root (default: the module's io_manager)")
    infer_cmd.add_argument("--format", choices=["python", "yaml"], default="python")
    infer_cmd.add_argument("--out", help="file to write (default: print)")
    infer_cmd.add_argument(
        "--max-categories",
        type=int,
        default=20,
        help="string columns with at most this many values get an isin check",
    )
    from pysetl_dagster.cli.cache import add_parser as add_cache_parser
    from pysetl_dagster.cli.scaffold import add_parser as add_scaffold_parser
    from pysetl_dagster.migrate.cli import add_parser as add_migrate_parser

    add_migrate_parser(commands)
    add_cache_parser(commands)
    add_scaffold_parser(commands)
    args = parser.parse_args(argv)
    if args.command in ("init", "new"):
        from pysetl_dagster.cli.scaffold import run as run_scaffold

        return run_scaffold(args)
    if args.command == "schema":
        try:
            return infer_schema(args)
        except Exception as exc:  # one line, not a traceback, for a CLI user
            print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
    if args.command == "cache":
        from pysetl_dagster.cli.cache import run as run_cache

        try:
            return run_cache(args)
        except PySetlDefinitionError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    if args.command == "migrate":
        from pysetl_dagster.migrate.cli import run as run_migrate

        return run_migrate(args)
    try:
        pipelines = _pipelines_of(args.module)
    except PySetlDefinitionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not pipelines:
        print(f"error: module {args.module!r} defines no pysetl_pipeline(...)", file=sys.stderr)
        return 1
    print("\n\n".join(describe(p, args.mermaid) for p in pipelines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
