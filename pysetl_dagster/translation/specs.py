"""Everything Dagster is told about a pipeline, built in one place: the asset spec of every
Factory and external input, and the asset checks of every Factory (as dagster-dbt builds `specs`
and `check_specs` together).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from dagster import AssetCheckSpec, AssetKey, AssetSpec, Config

from pysetl_dagster.automation.conditions import ResolvedCondition, resolve_condition
from pysetl_dagster.checks.plan import CheckPlan, build_check_plan
from pysetl_dagster.errors import PySetlDefinitionError
from pysetl_dagster.translation.declarations import FactoryDeclarations, read_declarations
from pysetl_dagster.translation.graph import ExternalInput, FactoryNode, PipelineGraph
from pysetl_dagster.translation.links import link_spec
from pysetl_dagster.translation.naming import invalid_key_components, snake_case
from pysetl_dagster.translation.translator import (
    PySetlExternalData,
    PySetlFactoryData,
    PySetlTranslator,
)

FactoryRef = type | str
"""How a Factory is named: its class, its class name or its asset key."""


@dataclass(frozen=True)
class TranslatedPipeline:
    """A pipeline's graph with an asset spec for every Factory and external input."""

    graph: PipelineGraph
    factory_specs: dict[FactoryNode, AssetSpec]
    external_specs: dict[ExternalInput, AssetSpec]
    check_plans: dict[FactoryNode, CheckPlan] = field(default_factory=dict)
    conditions: dict[FactoryNode, ResolvedCondition] = field(default_factory=dict)
    branches: dict[FactoryNode, ResolvedCondition] = field(default_factory=dict)
    """A branch's `choose` condition (see `conditions.branch`)."""
    declarations: dict[FactoryNode, FactoryDeclarations] = field(default_factory=dict)
    """What each Factory declares, read once at translation."""

    def config_class(self, node: FactoryNode) -> type[Config] | None:
        """The Factory's nested `Config` class (a `dagster.Config`), if it declares one."""
        declared = self.declarations.get(node)
        return declared.config_class if declared is not None else None

    def check_specs(self, node: FactoryNode) -> list[AssetCheckSpec]:
        plan = self.check_plans.get(node)
        return plan.specs() if plan is not None else []

    def find_factories(self, refs: Iterable[FactoryRef], what: str) -> list[FactoryNode]:
        """The Factories named by `refs`, in the order given, each once.

        A Factory is named one way everywhere (sensors, automation, outputs): by its class,
        its class name, or its asset key (`"clean_orders"`, `"eu/clean_orders"`). A name
        that matches nothing is a load-time error saying which names exist.
        """
        nodes = self.graph.nodes
        found: list[FactoryNode] = []
        for ref in refs:
            if isinstance(ref, type):
                matches = [n for n in nodes if n.factory_type is ref]
                label = ref.__name__
            else:
                label = str(ref)
                matches = [
                    n
                    for n in nodes
                    if label in (n.name, snake_case(n.name), self.key_of(n).to_user_string())
                ]
            if not matches:
                known = (
                    ", ".join(f"{n.name} ({self.key_of(n).to_user_string()})" for n in nodes)
                    or "none"
                )
                raise PySetlDefinitionError(
                    f"{what} of pipeline {self.graph.name!r} names Factory {label!r}, which is "
                    f"not in the pipeline (its Factories and asset keys: {known}). Name a "
                    "Factory by its class, class name or asset key, or add it to a Stage."
                )
            found.extend(m for m in matches if m not in found)
        return found

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


def translate(graph: PipelineGraph, translator: PySetlTranslator) -> TranslatedPipeline:
    """Ask the translator for every spec, in run order, and check the keys it returns."""
    external_specs = {
        ext: link_spec(ext) or translator.get_asset_spec(PySetlExternalData(ext, graph.name))
        for ext in graph.externals
    }
    factory_specs: dict[FactoryNode, AssetSpec] = {}
    check_plans: dict[FactoryNode, CheckPlan] = {}
    conditions: dict[FactoryNode, ResolvedCondition] = {}
    branches: dict[FactoryNode, ResolvedCondition] = {}
    declarations: dict[FactoryNode, FactoryDeclarations] = {}
    in_pipeline = [n.factory_type for n in graph.nodes]
    for node in graph.nodes:
        declared = declarations[node] = read_declarations(node.factory)
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
        data = PySetlFactoryData(node, graph.name, inputs, tuple(upstream), declared)
        factory_specs[node] = translator.get_asset_spec(data)
        consumed = {
            r.source.factory_type: r.attribute for r in inputs if isinstance(r.source, FactoryNode)
        }
        condition = translator.get_condition(data)
        if condition is not None:
            conditions[node] = resolve_condition(
                condition, node.name, graph.name, in_pipeline, consumed
            )
        if declared.branch is not None:
            branches[node] = resolve_condition(
                declared.branch.choose, node.name, graph.name, in_pipeline, consumed
            )
        validation = translator.get_validation(data)
        if validation is not None:
            try:
                check_plans[node] = build_check_plan(validation, factory_specs[node].key, node.name)
            except (TypeError, KeyError, AttributeError) as exc:
                raise PySetlDefinitionError(
                    f"Factory {node.name}: its validation schema {validation.schema!r} is not "
                    f"usable ({exc}). Declare a pandera DataFrameModel or DataFrameSchema "
                    "(pandera.pyspark for Spark outputs, pandera.pandas for pandas outputs) or a "
                    "typedspark Schema: `validation = Validation(MyModel, blocking=True)`."
                ) from exc

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
    return TranslatedPipeline(
        graph, factory_specs, external_specs, check_plans, conditions, branches, declarations
    )
