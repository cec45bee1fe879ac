"""Factory assets are built directly (defs/direct.py), not through `multi_asset`, to load fast:
the definitions must be exactly what `multi_asset` builds from the same arguments.

`_multi_asset_build` is the previous implementation of `defs.assets._build_factory_asset`,
kept here as the reference. Each test builds both and compares what Dagster keeps of an asset
(specs, inputs, outputs, checks, config schema, resources, tags, partition mappings) and the
whole code location's snapshot (what the UI and the daemon read). A Dagster upgrade that
changes what `multi_asset` builds fails here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._utils.warnings import disable_dagster_warnings
from dagster_shared.serdes import serialize_value
from pysetl.workflow import Pipeline, Stage

import definitions
from definitions.regional import regional_pipelines
from pysetl_dagster import (
    PySetlFactoryData,
    Validation,
    build_definitions,
    pysetl_pipeline,
)
from pysetl_dagster.defs.assets import build_factory_asset
from pysetl_dagster.defs.pipeline import PySetlPipelineDefinitions
from pysetl_dagster.execution.step import SPARK_RESOURCE_KEY
from pysetl_dagster.metadata import MetadataKey
from pysetl_dagster.translation.graph import FactoryNode
from pysetl_dagster.translation.specs import TranslatedPipeline, input_name
from tests.fixtures.numbers_pipeline import Numbers, build_numbers_pipeline
from tests.fixtures.partitioned_pipeline import build_daily_pipeline, build_events_pipeline
from tests.fixtures.translators import PositiveNumbers
from tests.fixtures.validation_pipeline import people_factories, person_schema


def _multi_asset_build(
    translated: TranslatedPipeline, node: FactoryNode, io_manager_key: str
) -> dg.AssetsDefinition:
    """The Factory asset as `multi_asset` builds it (the code `_build_factory_asset` had)."""
    spec = translated.factory_specs[node]
    output_name = spec.key.to_python_identifier()
    ins = {
        input_name(translated, upstream): dg.AssetIn(key=translated.key_of(upstream))
        for upstream in translated.graph.upstream_factories(node)
    }
    loaded = {asset_in.key for asset_in in ins.values()}
    other_deps = [dep for dep in spec.deps if dep.asset_key not in loaded]
    config_class = translated.config_class(node)

    def execute(context: Any, config: Any, kwargs: dict[str, Any]) -> Iterator[Any]:
        raise AssertionError("not run: only the definition is compared")

    if config_class is not None:

        def compute_with_config(
            context: dg.AssetExecutionContext, config: Any, **kwargs: Any
        ) -> Any:
            yield from execute(context, config, kwargs)

        compute_with_config.__annotations__.update(
            {"context": dg.AssetExecutionContext, "config": config_class, "kwargs": Any,
             "return": Any}
        )  # fmt: skip
        fn: Any = compute_with_config
    else:

        def compute(context: dg.AssetExecutionContext, **kwargs: Any) -> Any:
            yield from execute(context, None, kwargs)

        compute.__annotations__.update(
            {"context": dg.AssetExecutionContext, "kwargs": Any, "return": Any}
        )
        fn = compute

    out_spec = spec.replace_attributes(deps=[], partitions_def=None)
    plan = translated.check_plans.get(node)
    out_type: Any = plan.dagster_type() if plan is not None else None
    return dg.multi_asset(
        name=output_name,
        outs={
            output_name: dg.AssetOut.from_spec(
                out_spec,
                io_manager_key=io_manager_key,
                is_required=False,
                **({"dagster_type": out_type} if out_type is not None else {}),
            )
        },
        ins=ins,
        deps=other_deps,
        check_specs=translated.check_specs(node),
        can_subset=True,
        partitions_def=spec.partitions_def,
        required_resource_keys={SPARK_RESOURCE_KEY, io_manager_key},
        op_tags={
            MetadataKey.FACTORY: node.name,
            **({MetadataKey.STAGE: str(node.stage_index)} if node.stage_index is not None else {}),
        },
    )(fn)


def _with_reference_assets(p: PySetlPipelineDefinitions) -> PySetlPipelineDefinitions:
    """The same pipeline with every Factory asset built by `multi_asset`."""
    by_key = {
        p.translated.key_of(node): _multi_asset_build(p.translated, node, p.io_manager_key)
        for node in p.translated.graph.nodes
    }
    assets = [
        by_key[a.key] if isinstance(a, dg.AssetsDefinition) and a.key in by_key else a
        for a in p.assets
    ]
    return dataclasses.replace(p, assets=assets)


def _describe(asset: dg.AssetsDefinition) -> dict[str, Any]:
    """What Dagster keeps of an asset definition, in comparable form."""
    op = asset.node_def
    assert isinstance(op, dg.OpDefinition)
    return {
        "op": op.name,
        "specs": list(asset.specs),
        "keys_by_input_name": dict(asset.node_keys_by_input_name),
        "keys_by_output_name": dict(asset.node_keys_by_output_name),
        "check_specs_by_output_name": dict(asset.node_check_specs_by_output_name),
        "can_subset": asset.can_subset,
        "partitions_def": asset.partitions_def,
        "inputs": [
            (d.name, d.dagster_type.key, d.metadata, d.input_manager_key, d.description)
            for d in op.input_defs
        ],
        "outputs": [
            (
                d.name,
                d.dagster_type.key,
                d.is_required,
                d.io_manager_key,
                dict(d.metadata),
                d.code_version,
                d.description,
            )
            for d in op.output_defs
        ],
        "config_snap": _config_snap(op),
        "resources": op.required_resource_keys,
        "tags": op.tags,
        "description": op.description,
        "op_code_version": op._version,
        "retry_policy": op.retry_policy,
        "pool": op.pool,
    }


def _config_snap(op: dg.OpDefinition) -> str | None:
    from dagster._config.snap import snap_from_field

    field = op.config_field
    return None if field is None else serialize_value(snap_from_field("config", field))


def _snapshot(defs: dg.Definitions) -> str:
    """The code location as Dagster serves it (assets, jobs, ops, config, resources)."""
    with disable_dagster_warnings():  # Dagster's own snapshot reads deprecated properties
        return serialize_value(RepositorySnap.from_def(defs.get_repository_def()))


class _PositiveNumbersWithDep(PositiveNumbers):
    """A check on Numbers and a dependency Numbers does not load (a deps-only input)."""

    def get_asset_spec(self, data: Any) -> dg.AssetSpec:
        spec = super().get_asset_spec(data)
        if isinstance(data, PySetlFactoryData) and data.factory_type is Numbers:
            return spec.merge_attributes(deps=[dg.AssetDep("raw_numbers")])
        return spec


def _pipelines() -> dict[str, list[PySetlPipelineDefinitions]]:
    people, people_count = people_factories(Validation(person_schema()))
    return {
        "example": [definitions.retail, definitions.returns, definitions.review],
        "templates_and_daily_partitions": regional_pipelines(),
        "config_checks_and_deps": [
            pysetl_pipeline(build_numbers_pipeline(), name="numbers"),
            pysetl_pipeline(
                build_numbers_pipeline(),
                name="checked",
                translator=_PositiveNumbersWithDep(key_prefix="checked"),
                io_manager_key="checked_io",
            ),
            pysetl_pipeline(
                Pipeline()
                .add_stage(Stage().add_factory(people))
                .add_stage(Stage().add_factory(people_count)),
                name="people",
            ),
        ],
        "partitions": [
            pysetl_pipeline(build_events_pipeline(), name="events"),
            pysetl_pipeline(build_daily_pipeline(), name="daily"),
        ],
    }


@pytest.mark.parametrize("case", sorted(_pipelines()))
def test_direct_assets_equal_what_multi_asset_builds(case: str) -> None:
    pipelines = _pipelines()[case]
    compared = 0
    for p in pipelines:
        for node in p.translated.graph.nodes:
            direct = build_factory_asset(p.translated, node, io_manager_key=p.io_manager_key)
            reference = _multi_asset_build(p.translated, node, p.io_manager_key)
            assert _describe(direct) == _describe(reference), node.name
            compared += 1
    assert compared >= 3

    profile = definitions.profile if case == "example" else None
    direct_defs = build_definitions(*pipelines, storage_path="unused", profile=profile)
    reference_defs = build_definitions(
        *[_with_reference_assets(p) for p in pipelines], storage_path="unused", profile=profile
    )
    assert _snapshot(direct_defs) == _snapshot(reference_defs)
