"""A PySetl Pipeline as Dagster assets: one asset per Factory, one source asset per external input.

Each Factory asset loads its upstream Factories' outputs through the IO manager (so any subset
can run: what is not selected is read from storage) and runs `factory_step` (the step Stage ops
run too). Its pandera checks are asset checks of the same definition (`can_subset`: a check can
run alone, against the stored output). The definition is built directly (`defs/direct.py`),
equal to what `multi_asset` builds but without reading each compute function back, which was
most of the load time of a large pipeline.
"""

from collections.abc import Iterator
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    AssetCheckResult,
    AssetExecutionContext,
    AssetIn,
    AssetOut,
    AssetsDefinition,
    AssetSpec,
    Output,
)

from pysetl_dagster.defs.direct import factory_assets_definition
from pysetl_dagster.defs.executor import SPARK_RESOURCE_KEY
from pysetl_dagster.metadata import MetadataKey
from pysetl_dagster.translation.graph import FactoryNode
from pysetl_dagster.translation.links import link_of
from pysetl_dagster.translation.specs import (
    TranslatedPipeline,
    input_name,
    translate,
)

Step = Iterator[Output[Any] | AssetCheckResult | AssetCheckEvaluation]
"""What a Factory asset's step yields."""

__all__ = [
    "SPARK_RESOURCE_KEY",
    "TranslatedPipeline",
    "build_factory_asset",
    "build_pysetl_assets",
    "translate",
]


def asset_signature(
    translated: TranslatedPipeline, node: FactoryNode, io_manager_key: str = "io_manager"
) -> tuple[Any, ...]:
    """What makes two Factory assets interchangeable: same Factory code and state, same key,
    same inputs, same checks and condition. Group and stage are left out, so a Factory shared
    by two pipelines is one asset (in the group of the pipeline passed first to
    `build_definitions`, which de-duplicates by this signature)."""
    spec = translated.factory_specs[node]
    externals = tuple(
        (attr, type(value), repr(value))
        for attr, value in sorted(translated.external_values(node).items())
    )
    checks = tuple(
        (check.name, check.blocking, check.description or "")
        for check in translated.check_specs(node)
    )
    condition = translated.conditions.get(node)
    return (
        node.factory_type,
        spec.key,
        spec.code_version,
        tuple(dep.asset_key for dep in spec.deps),
        spec.description,
        repr(spec.automation_condition),
        spec.partitions_def,
        io_manager_key,
        externals,
        checks,
        condition.condition.describe() if condition is not None else None,
        repr({k: v for k, v in sorted(vars(node.factory).items()) if k != "uuid"}),
    )


def build_factory_asset(
    translated: TranslatedPipeline, node: FactoryNode, *, io_manager_key: str = "io_manager"
) -> AssetsDefinition:
    """The asset of one Factory, built from this pipeline's own translation (its spec, checks
    and condition): never shared with another pipeline's build."""
    return _build_factory_asset(translated, node, io_manager_key)


def _build_factory_asset(
    translated: TranslatedPipeline, node: FactoryNode, io_manager_key: str
) -> AssetsDefinition:
    spec = translated.factory_specs[node]
    graph = translated.graph
    output_name = spec.key.to_python_identifier()

    ins = {
        input_name(translated, upstream): AssetIn(key=translated.key_of(upstream))
        for upstream in graph.upstream_factories(node)
    }
    loaded = {asset_in.key for asset_in in ins.values()}
    other_deps = [dep for dep in spec.deps if dep.asset_key not in loaded]
    config_class = translated.config_class(node)

    def execute(context: AssetExecutionContext, config: Any, kwargs: dict[str, Any]) -> Step:
        # the step machinery is imported by the run that needs it, not by every code server
        # that only loads definitions (docs/benchmarks.md, "Load time")
        from pysetl_dagster.execution.step import factory_step

        return factory_step(
            context,
            translated,
            node,
            kwargs,
            config,
            io_manager_key=io_manager_key,
            materialize=spec.key in context.selected_asset_keys,
            check_keys=set(context.selected_asset_check_keys),
        )

    out_spec = spec.replace_attributes(deps=[], partitions_def=None)
    plan = translated.check_plans.get(node)
    out_type: Any = plan.dagster_type() if plan is not None else None
    return factory_assets_definition(
        execute,
        name=output_name,
        out=AssetOut.from_spec(
            out_spec,
            io_manager_key=io_manager_key,
            is_required=False,
            **({"dagster_type": out_type} if out_type is not None else {}),
        ),
        ins=ins,
        deps=other_deps,
        check_specs=translated.check_specs(node),
        partitions_def=spec.partitions_def,
        config_class=config_class,
        required_resource_keys={SPARK_RESOURCE_KEY, io_manager_key},
        op_tags={
            MetadataKey.FACTORY: node.name,
            **({MetadataKey.STAGE: str(node.stage_index)} if node.stage_index is not None else {}),
        },
    )


def build_pysetl_assets(
    translated: TranslatedPipeline, *, io_manager_key: str = "io_manager"
) -> list[AssetsDefinition | AssetSpec]:
    """Every Factory asset of the pipeline, plus its external inputs as source assets."""
    assets: list[AssetsDefinition | AssetSpec] = [
        spec for ext, spec in translated.external_specs.items() if link_of(ext) is None
    ]  # a linked input is another pipeline's asset
    assets.extend(
        build_factory_asset(translated, node, io_manager_key=io_manager_key)
        for node in translated.graph.nodes
    )
    return assets
