"""A PySetl Pipeline as Dagster assets: one asset per Factory, one source asset per external input.

Each Factory asset loads its upstream Factories' outputs through the IO manager (so any subset
can run: what is not selected is read from storage), runs the Factory through `factory_step`
(the same path Stage ops use), and returns `get()` for the IO manager to persist.
"""

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetOut,
    AssetsDefinition,
    AssetSpec,
    Config,
    OpExecutionContext,
    Output,
    multi_asset,
)

from .errors import PySetlDefinitionError
from .graph import ExternalInput, FactoryNode, PipelineGraph
from .naming import invalid_key_components
from .runner import run_factory
from .translator import PySetlExternalData, PySetlFactoryData, PySetlTranslator

SPARK_RESOURCE_KEY = "pyspark"


def factory_config_class(node: FactoryNode) -> type[Config] | None:
    """The Factory's nested `Config` class (a `dagster.Config`), if it declares one."""
    config_class = getattr(node.factory_type, "Config", None)
    if isinstance(config_class, type) and issubclass(config_class, Config):
        return config_class
    return None


@dataclass(frozen=True)
class TranslatedPipeline:
    """A pipeline's graph with an asset spec for every Factory and external input."""

    graph: PipelineGraph
    factory_specs: dict[FactoryNode, AssetSpec]
    external_specs: dict[ExternalInput, AssetSpec]

    def key_of(self, source: FactoryNode | ExternalInput) -> AssetKey:
        if isinstance(source, FactoryNode):
            return self.factory_specs[source].key
        return self.external_specs[source].key

    def external_values(self, node: FactoryNode) -> dict[str, Any]:
        return {
            r.attribute: r.source.payload
            for r in self.graph.inputs[node]
            if isinstance(r.source, ExternalInput)
        }


def input_name(translated: TranslatedPipeline, upstream: FactoryNode) -> str:
    """The Dagster input (of an asset or a Stage op) that carries an upstream Factory's output."""
    return f"in_{translated.key_of(upstream).to_python_identifier()}"


def factory_step(
    context: AssetExecutionContext | OpExecutionContext,
    translated: TranslatedPipeline,
    node: FactoryNode,
    loaded: Mapping[str, Any],
    config: Any,
) -> Output[Any]:
    """Run one Factory inside a Dagster step (asset or Stage op) and return its output.

    `loaded` maps Dagster input names to upstream values; external inputs come from the graph.
    """
    values = translated.external_values(node)
    for resolved in translated.graph.inputs[node]:
        if isinstance(resolved.source, FactoryNode):
            values[resolved.attribute] = loaded[input_name(translated, resolved.source)]
    key = translated.key_of(node)
    run = run_factory(
        node,
        values,
        spark=getattr(context.resources, SPARK_RESOURCE_KEY).spark_session,
        run_id=context.run.run_id,
        asset=key.to_user_string(),
        config=config,
    )
    return Output(run.output, output_name=key.to_python_identifier(), metadata=run.metadata())


def translate(graph: PipelineGraph, translator: PySetlTranslator) -> TranslatedPipeline:
    """Ask the translator for every spec, in run order, and check the keys it returns."""
    external_specs = {
        ext: translator.get_asset_spec(PySetlExternalData(ext, graph.name))
        for ext in graph.externals
    }
    factory_specs: dict[FactoryNode, AssetSpec] = {}
    for node in graph.nodes:
        inputs = graph.inputs[node]
        upstream: list[AssetKey] = []
        for resolved in inputs:
            source = resolved.source
            key = (
                factory_specs[source].key
                if isinstance(source, FactoryNode)
                else external_specs[source].key
            )
            if key not in upstream:
                upstream.append(key)
        data = PySetlFactoryData(node, graph.name, inputs, tuple(upstream))
        factory_specs[node] = translator.get_asset_spec(data)

    owners: dict[AssetKey, str] = {}
    for owner, spec in [
        *((repr(n), s) for n, s in factory_specs.items()),
        *((repr(e), s) for e, s in external_specs.items()),
    ]:
        bad = invalid_key_components(list(spec.key.path))
        if bad:
            raise PySetlDefinitionError(
                f"{owner} maps to asset key {spec.key.to_user_string()!r}, whose part(s) "
                f"{bad} have characters Dagster does not allow (use letters, digits, `_`, `-`, "
                "`.`). Fix the key in your translator's get_asset_spec, or the key_prefix."
            )
        if spec.key in owners:
            raise PySetlDefinitionError(
                f"{owner} and {owners[spec.key]} both map to asset key "
                f"{spec.key.to_user_string()!r} in pipeline {graph.name!r}. Give one of them "
                "another key (override PySetlTranslator.get_asset_spec), or don't add the same "
                "Factory twice."
            )
        owners[spec.key] = owner
    return TranslatedPipeline(graph, factory_specs, external_specs)


# Built definitions are reused, so the same Factory translated twice (two pipelines, two jobs,
# a module imported twice by a code server) yields the same object and Definitions sees no
# conflicting duplicate.
_ASSET_CACHE: dict[tuple[Any, ...], AssetsDefinition] = {}
_CACHE_LOCK = threading.Lock()


def _cache_key(
    translated: TranslatedPipeline, node: FactoryNode, io_manager_key: str
) -> tuple[Any, ...]:
    """What makes two Factory assets interchangeable: same Factory code and state, same key,
    same inputs. Group and stage are left out, so a Factory shared by two pipelines is one
    asset (in the group of the pipeline built first)."""
    spec = translated.factory_specs[node]
    externals = tuple(
        (attr, type(value), repr(value))
        for attr, value in sorted(translated.external_values(node).items())
    )
    return (
        node.factory_type,
        spec.key,
        spec.code_version,
        tuple(dep.asset_key for dep in spec.deps),
        spec.description,
        io_manager_key,
        externals,
        repr({k: v for k, v in sorted(vars(node.factory).items()) if k != "uuid"}),
    )


def build_factory_asset(
    translated: TranslatedPipeline, node: FactoryNode, *, io_manager_key: str = "io_manager"
) -> AssetsDefinition:
    """The asset of one Factory (cached: the same inputs return the same definition)."""
    cache_key = _cache_key(translated, node, io_manager_key)
    with _CACHE_LOCK:
        cached = _ASSET_CACHE.get(cache_key)
        if cached is None:
            cached = _ASSET_CACHE[cache_key] = _build_factory_asset(
                translated, node, io_manager_key
            )
    return cached


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
    config_class = factory_config_class(node)

    def execute(context: AssetExecutionContext, config: Any, kwargs: dict[str, Any]) -> Output[Any]:
        return factory_step(context, translated, node, kwargs, config)

    # Dagster reads the config schema from the `config` parameter's annotation, so a Factory
    # without a `Config` gets a function without that parameter.
    if config_class is not None:

        def compute_with_config(
            context: AssetExecutionContext, config: Any, **kwargs: Any
        ) -> Output[Any]:
            return execute(context, config, kwargs)

        compute_with_config.__annotations__["config"] = config_class
        fn: Any = compute_with_config
    else:

        def compute(context: AssetExecutionContext, **kwargs: Any) -> Output[Any]:
            return execute(context, None, kwargs)

        fn = compute

    out_spec = spec.replace_attributes(deps=[])
    return multi_asset(
        name=output_name,
        outs={
            output_name: AssetOut.from_spec(
                out_spec,
                io_manager_key=io_manager_key,
            )
        },
        ins=ins,
        deps=other_deps,
        required_resource_keys={SPARK_RESOURCE_KEY},
        op_tags={
            "pysetl/factory": node.name,
            **({"pysetl/stage": str(node.stage_index)} if node.stage_index is not None else {}),
        },
    )(fn)


def build_pysetl_assets(
    translated: TranslatedPipeline, *, io_manager_key: str = "io_manager"
) -> list[AssetsDefinition | AssetSpec]:
    """Every Factory asset of the pipeline, plus its external inputs as source assets."""
    assets: list[AssetsDefinition | AssetSpec] = list(translated.external_specs.values())
    assets.extend(
        build_factory_asset(translated, node, io_manager_key=io_manager_key)
        for node in translated.graph.nodes
    )
    return assets
