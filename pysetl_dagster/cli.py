"""`pysetl-dagster`: inspect how a project's PySetl pipelines map to Dagster.

    pysetl-dagster describe -m definitions      # every pipeline the module defines
    pysetl-dagster describe -m definitions --mermaid
    pysetl-dagster migrate legacy_jobs/ --out migrated/ --verify   # scripts -> Factories

Later commands (`init`) hang off the same parser.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .errors import PySetlDefinitionError
from .graph import ExternalInput, FactoryNode
from .pipelines import PySetlPipelineDefinitions


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pysetl-dagster", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    describe_cmd = commands.add_parser("describe", help="print pipelines, assets and wiring")
    describe_cmd.add_argument("-m", "--module", required=True, help="module defining pipelines")
    describe_cmd.add_argument("--mermaid", action="store_true", help="also print the diagrams")
    from .migrate.cli import add_parser as add_migrate_parser

    add_migrate_parser(commands)
    args = parser.parse_args(argv)
    if args.command == "migrate":
        from .migrate.cli import run as run_migrate

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
