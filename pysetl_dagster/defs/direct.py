"""A Factory's `AssetsDefinition` built directly, as `multi_asset` would build it, for load time.

`multi_asset(...)(fn)` spends most of its time reading the compute function back: its
signature and type hints, about twenty times per asset (`inspect.signature`,
`typing.get_type_hints`), to infer inputs, outputs, context type, config and resource
arguments that the Factory asset already knows. For 1,000 Factories that is most of the
definitions' load time (docs/benchmarks.md, "Load time (issue 15)").

`factory_assets_definition` takes the same arguments and returns the same definition: Dagster's
own builder still works out the inputs, the asset specs, the partition mappings and the
check outputs (`DecoratorAssetsDefinitionBuilder`, the code `multi_asset` runs), and only the
`OpDefinition` is made here, from what is known instead of what is inferred: the config schema
from the Factory's `Config` class, the resource keys as given, no description. The op's
compute function is Dagster's direct form, `compute(context, inputs)`, so Dagster does not wrap
it at every step either; it builds the `Config` as Dagster does (`construct_config_from_context`).

`tests/defs/test_direct_assets.py` checks, for Factories with and without inputs, deps,
checks, partitions and config, that the definition equals what `multi_asset` builds (specs,
op inputs and outputs, config schema, resources, tags, the repository snapshot).
"""

# No `from __future__ import annotations` here: Dagster reads the compute function's `context`
# annotation at run time to give it an `AssetExecutionContext`, so it must be the class.

from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import update_wrapper
from inspect import Parameter
from typing import Any

import dagster._check as check
from dagster import (
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    AssetIn,
    AssetOut,
    AssetsDefinition,
    Config,
    OpDefinition,
    PartitionsDefinition,
)
from dagster._config.pythonic_config import infer_schema_from_config_annotation
from dagster._core.definitions.assets.definition.asset_spec import AssetExecutionType
from dagster._core.definitions.decorators.asset_decorator import make_asset_deps
from dagster._core.definitions.decorators.decorator_assets_definition_builder import (
    DecoratorAssetsDefinitionBuilder,
    DecoratorAssetsDefinitionBuilderArgs,
    create_check_specs_by_output_name,
)
from dagster._core.execution.plan.compute_generator import construct_config_from_context
from dagster._utils.warnings import disable_dagster_warnings

Compute = Callable[[AssetExecutionContext, Any, dict[str, Any]], Iterator[Any]]
"""`(context, config or None, input values by name) -> events`: what the asset runs."""


def _signature(context: AssetExecutionContext, **kwargs: Any) -> Any:
    """The shape `multi_asset` would see (a context, then inputs as keyword arguments): what
    Dagster's builder reads to name the asset's inputs. Never called."""
    raise NotImplementedError


def _events(
    execute: Compute, context: AssetExecutionContext, config: Any, inputs: dict[str, Any]
) -> Iterator[Any]:
    yield from execute(context, config, inputs)


def _builder(
    name: str,
    *,
    out: AssetOut,
    ins: Mapping[str, AssetIn],
    deps: Sequence[AssetDep],
    check_specs: Sequence[AssetCheckSpec],
    partitions_def: PartitionsDefinition | None,
    required_resource_keys: set[str],
    op_tags: Mapping[str, str],
) -> DecoratorAssetsDefinitionBuilder:
    """Dagster's builder with the arguments `multi_asset` would give it: it derives the
    inputs, specs, partition mappings and check outputs."""
    # The arguments exactly as `multi_asset` passes them (mypy miscounts the fields: Dagster's
    # NamedTuple declares `retry_policy` twice).
    args = DecoratorAssetsDefinitionBuilderArgs(  # type: ignore[call-arg]
        name=name,
        op_description=None,
        specs=[],
        check_specs_by_output_name=create_check_specs_by_output_name(check_specs),
        asset_out_map={name: out},
        upstream_asset_deps=make_asset_deps(deps),
        asset_deps={},
        asset_in_map=dict(ins),
        can_subset=True,
        group_name=None,
        partitions_def=partitions_def,
        retry_policy=None,
        code_version=None,
        op_tags=op_tags,
        config_schema={},
        compute_kind=None,
        required_resource_keys=required_resource_keys,
        op_def_resource_defs={},
        assets_def_resource_defs={},
        backfill_policy=None,
        decorator_name="@multi_asset",
        execution_type=AssetExecutionType.MATERIALIZATION,
        pool=None,
        allow_arbitrary_check_specs=False,
        hooks=set(),
    )
    builder = DecoratorAssetsDefinitionBuilder.for_multi_asset(args=args, fn=_signature)
    check.invariant(  # as multi_asset checks
        len(builder.overlapping_output_names) == 0,
        f"Check output names overlap with asset output names: {builder.overlapping_output_names}",
    )
    return builder


def _compute_function(
    execute: Compute, config_class: type[Config] | None
) -> tuple[Callable[[AssetExecutionContext, dict[str, Any]], Iterator[Any]], Any]:
    """The op's compute function in Dagster's direct form, and the op's config schema."""
    # Dagster's own wrapper builds the config when the step calls the function, and runs
    # the body only when the step iterates its events: the same here.
    if config_class is not None:

        def compute(context: AssetExecutionContext, inputs: dict[str, Any]) -> Iterator[Any]:
            config = construct_config_from_context(config_class, context.op_execution_context)
            return _events(execute, context, config, inputs)

        config_schema: Any = infer_schema_from_config_annotation(config_class, Parameter.empty)
    else:

        def compute(context: AssetExecutionContext, inputs: dict[str, Any]) -> Iterator[Any]:
            return _events(execute, context, None, inputs)

        config_schema = {}  # what multi_asset passes when the function takes no config
    return compute, config_schema


def factory_assets_definition(
    execute: Compute,
    *,
    name: str,
    out: AssetOut,
    ins: Mapping[str, AssetIn],
    deps: Sequence[AssetDep],
    check_specs: Sequence[AssetCheckSpec],
    partitions_def: PartitionsDefinition | None,
    config_class: type[Config] | None,
    required_resource_keys: set[str],
    op_tags: Mapping[str, str],
) -> AssetsDefinition:
    """The definition `multi_asset(name=name, outs={name: out}, ins=ins, deps=deps,
    check_specs=check_specs, can_subset=True, partitions_def=partitions_def,
    required_resource_keys=..., op_tags=op_tags)` builds around a function
    `(context, config: config_class, **inputs)`, without reading any function back.

    Args:
        execute: runs the asset: `(context, config or None, inputs)` -> events.
        name: the op's and the single output's name.
        out: the asset's output (from its spec; no deps, no partitions).
        ins: input name -> the upstream asset it loads.
        deps: upstream assets it depends on without loading them.
        check_specs: the asset's checks (each an optional output).
        partitions_def: the asset's partitions, if any.
        config_class: the Factory's `Config`, which becomes the op's config schema.
        required_resource_keys: the resources the op needs.
        op_tags: the op's tags.
    """
    builder = _builder(
        name,
        out=out,
        ins=ins,
        deps=deps,
        check_specs=check_specs,
        partitions_def=partitions_def,
        required_resource_keys=required_resource_keys,
        op_tags=op_tags,
    )
    compute, config_schema = _compute_function(execute, config_class)
    with disable_dagster_warnings():
        op_def = OpDefinition.dagster_internal_init(
            name=name,
            ins=builder.ins_by_input_names,
            outs=builder.combined_outs_by_output_name,
            compute_fn=compute,
            config_schema=config_schema,
            description=None,
            required_resource_keys=set(required_resource_keys),
            tags=dict(op_tags),
            code_version=None,
            retry_policy=None,
            version=None,
            pool=None,
        )
        update_wrapper(op_def, compute)
        return AssetsDefinition.dagster_internal_init(
            keys_by_input_name=builder.asset_keys_by_input_names,
            keys_by_output_name=builder.asset_keys_by_output_name,
            node_def=op_def,
            can_subset=True,
            resource_defs={},
            backfill_policy=None,
            check_specs_by_output_name=builder.check_specs_by_output_name,
            specs=builder.specs,
            hook_defs=set(),
            is_subset=False,
            selected_asset_keys=None,
            selected_asset_check_keys=None,
            execution_type=AssetExecutionType.MATERIALIZATION,
        )
