"""The static dependency graph of a PySetl pipeline.

PySetl wires Factories at run time: its Dispatcher fills each `Delivery` from the pool of
Deliverables produced so far. Dagster needs the same wiring before anything runs, so this
module replays the Dispatcher's rules on declarations alone (`expected_deliveries()` and
`delivery_type()`, never `describe()`): match the payload type, then `delivery_id`, then the
producer, then the consumers. Problems PySetl would only hit mid-run (a Delivery nobody
produces, an ambiguous one, a cycle) become load-time errors that name the Factory.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, get_origin

from pysetl.utils import pretty
from pysetl.workflow import Deliverable, Delivery, Factory, Pipeline
from pysetl.workflow.delivery_type import DeliveryType
from pysetl.workflow.external import External
from typedspark import DataSet

from pysetl_dagster.errors import PySetlDefinitionError


def _type_name(tp: Any) -> str:
    try:
        return str(pretty(tp))
    except Exception:  # pretty() only knows a few shapes of type
        return getattr(tp, "__name__", repr(tp))


@dataclass(frozen=True, eq=False)
class ExternalInput:
    """A value registered on the pipeline (`set_input_from_deliverable`, PySetl repositories)."""

    deliverable: Deliverable[Any]

    @property
    def payload(self) -> Any:
        return self.deliverable.payload

    @cached_property
    def payload_type(self) -> Any:
        return self.deliverable.payload_type.tp

    @property
    def delivery_id(self) -> str:
        return self.deliverable.delivery_id

    @property
    def producer(self) -> type:
        return self.deliverable.producer

    @property
    def consumers(self) -> frozenset[type]:
        return frozenset(self.deliverable.consumers)

    @property
    def name(self) -> str:
        """What users call it: its `delivery_id`, else its payload type."""
        return self.delivery_id or _type_name(self.payload_type)

    def __repr__(self) -> str:
        return f"external input {self.name!r} ({_type_name(self.payload_type)})"


@dataclass(frozen=True, eq=False)
class FactoryNode:
    """One Factory of the pipeline, with what PySetl needs to dispatch to and from it."""

    factory: Factory[Any]
    stage_index: int | None

    @property
    def factory_type(self) -> type[Factory[Any]]:
        return type(self.factory)

    @property
    def name(self) -> str:
        return self.factory_type.__name__

    @cached_property
    def payload_type(self) -> Any:
        return output_type_of(self.factory_type)

    @property
    def delivery_id(self) -> str:
        return self.factory.delivery_id

    @property
    def producer(self) -> type:
        return self.factory_type

    @property
    def consumers(self) -> frozenset[type]:
        return frozenset(self.factory.consumers)

    @cached_property
    def deliveries(self) -> tuple[tuple[str, Delivery[Any]], ...]:
        """The Factory's input slots as (class attribute name, Delivery), in name order."""
        members = inspect.getmembers(self.factory_type, lambda v: isinstance(v, Delivery))
        return tuple((attr, delivery) for attr, delivery in members)

    def __repr__(self) -> str:
        return f"Factory {self.name}"


Source = FactoryNode | ExternalInput


@dataclass(frozen=True)
class ResolvedInput:
    """A Delivery of a Factory and the producer PySetl's Dispatcher would fill it from."""

    attribute: str
    delivery: Delivery[Any]
    source: Source

    @property
    def payload_type(self) -> Any:
        return self.delivery.payload_type


def type_identity(tp: Any) -> Any:
    """A hashable stand-in for a payload type, equal whenever PySetl's `DeliveryType` says the
    types are equal (used to index producers; `DeliveryType` still has the last word)."""
    origin = get_origin(tp)
    if origin is not None:
        return ("generic", origin)
    schema = getattr(tp, "_schema_annotations", None)
    if schema is not None and isinstance(tp, type) and issubclass(tp, DataSet):
        return ("dataset", id(schema))
    return ("type", id(tp))


def output_type_of(factory_type: type[Factory[Any]]) -> Any:
    """The Factory's declared output type, or a load-time error saying how to declare it."""
    try:
        return factory_type.delivery_type().tp
    except (NotImplementedError, StopIteration, TypeError, AttributeError) as exc:
        raise PySetlDefinitionError(
            f"Factory {factory_type.__name__} has no type parameter, so nothing can consume "
            f"its output. Declare what get() returns, e.g. "
            f"`class {factory_type.__name__}(Factory[DataSet[MySchema]])`."
        ) from exc


def _delivery_label(consumer: FactoryNode, attribute: str, delivery: Delivery[Any]) -> str:
    parts = [f"Delivery[{_type_name(delivery.payload_type)}]"]
    if delivery.delivery_id:
        parts.append(f"delivery_id={delivery.delivery_id!r}")
    if delivery.producer is not External:
        parts.append(f"producer={delivery.producer.__name__}")
    return f"{consumer.name}.{attribute} ({', '.join(parts)})"


@dataclass
class PipelineGraph:
    """Factories, external inputs and the resolved wiring between them, in run order."""

    name: str
    nodes: list[FactoryNode]
    externals: list[ExternalInput]
    inputs: dict[FactoryNode, tuple[ResolvedInput, ...]] = field(default_factory=dict)
    pipeline: Pipeline | None = None

    @classmethod
    def from_pipeline(cls, pipeline: Pipeline, name: str) -> PipelineGraph:
        """Read Stages in order; each Factory may only consume earlier Stages, as in PySetl."""
        nodes = [
            FactoryNode(factory, stage_index)
            for stage_index, stage in enumerate(pipeline.stages)
            for factory in stage.factories
        ]
        externals = [ExternalInput(d) for d in pipeline.dispatcher.get_registry().values()]
        graph = cls(name=name, nodes=nodes, externals=externals, pipeline=pipeline)
        graph._resolve()
        return graph

    @classmethod
    def from_factories(
        cls,
        factories: Iterable[Factory[Any]],
        name: str,
        externals: Sequence[Deliverable[Any]] = (),
    ) -> PipelineGraph:
        """Factories with no Stages: order comes from the wiring (a cycle is an error)."""
        nodes = [FactoryNode(factory, None) for factory in factories]
        graph = cls(name=name, nodes=nodes, externals=[ExternalInput(d) for d in externals])
        graph._resolve()
        graph.nodes = graph._topological_order()
        return graph

    # -- resolution ------------------------------------------------------------------------

    def _resolve(self) -> None:
        self._by_type: dict[tuple[Any, str], list[Source]] = {}
        sources: list[Source] = [*self.externals, *self.nodes]
        for source in sources:  # an untyped Factory fails here, by name
            key = (type_identity(source.payload_type), source.delivery_id)
            self._by_type.setdefault(key, []).append(source)
        for node in self.nodes:
            self.inputs[node] = tuple(
                ResolvedInput(attribute, delivery, self._resolve_one(node, attribute, delivery))
                for attribute, delivery in node.deliveries
            )

    def _matching(self, delivery: Delivery[Any]) -> list[Source]:
        """Sources whose payload type and delivery_id match the Delivery (PySetl's first test)."""
        key = (type_identity(delivery.payload_type), delivery.delivery_id)
        return [
            s
            for s in self._by_type.get(key, [])
            if DeliveryType(s.payload_type) == DeliveryType(delivery.payload_type)
        ]

    @staticmethod
    def _runs_before(source: Source, consumer: FactoryNode) -> bool:
        """Whether PySetl's Dispatcher holds `source` when `consumer` runs."""
        if isinstance(source, ExternalInput):
            return True
        if source is consumer:
            return False
        if consumer.stage_index is None:
            return True
        return source.stage_index is not None and source.stage_index < consumer.stage_index

    def _resolve_one(
        self, consumer: FactoryNode, attribute: str, delivery: Delivery[Any]
    ) -> Source:
        label = _delivery_label(consumer, attribute, delivery)
        matching = self._matching(delivery)
        candidates = [s for s in matching if self._runs_before(s, consumer)]
        if len(candidates) == 1:
            (only,) = candidates
            if only.consumers and consumer.factory_type not in only.consumers:
                allowed = ", ".join(sorted(c.__name__ for c in only.consumers))
                raise PySetlDefinitionError(
                    f"{label}: the only match, {only!r}, is reserved for {allowed}. "
                    f"Add {consumer.name} to its consumers, or produce a separate value for it."
                )
            return only
        if candidates:
            by_producer = [s for s in candidates if s.producer is delivery.producer]
            if len(by_producer) == 1:
                return by_producer[0]
            narrowed = by_producer or candidates
            by_consumer = [s for s in narrowed if consumer.factory_type in s.consumers]
            if len(by_consumer) == 1 and by_producer:
                return by_consumer[0]
            names = ", ".join(repr(s) for s in narrowed)
            raise PySetlDefinitionError(
                f"{label} is ambiguous: {len(narrowed)} producers match ({names}). "
                f"Set `producer=` or `delivery_id=` on the Delivery (and `delivery_id` on the "
                f"producing Factory), or list {consumer.name} in exactly one producer's "
                f"`consumers`."
            )
        later = [s for s in matching if isinstance(s, FactoryNode) and s is not consumer]
        if later:
            where = ", ".join(f"{n.name} (stage {n.stage_index})" for n in later)
            raise PySetlDefinitionError(
                f"{label} is produced by {where}, which does not run before "
                f"{consumer.name} (stage {consumer.stage_index}). Move the producer to an "
                f"earlier Stage, or {consumer.name} to a later one."
            )
        raise PySetlDefinitionError(
            f"{label}: no Factory of pipeline {self.name!r} produces it and no external input "
            f"provides it. Add a Factory[{_type_name(delivery.payload_type)}] to an earlier "
            f"Stage, or register the value with `pipeline.set_input_from_deliverable("
            f"Deliverable[{_type_name(delivery.payload_type)}](value"
            + (f", delivery_id={delivery.delivery_id!r}" if delivery.delivery_id else "")
            + "))`."
        )

    def _topological_order(self) -> list[FactoryNode]:
        order: list[FactoryNode] = []
        state: dict[FactoryNode, int] = {}  # 1 = on the current path, 2 = done

        def visit(node: FactoryNode, path: list[FactoryNode]) -> None:
            if state.get(node) == 2:
                return
            if state.get(node) == 1:
                cycle = [*path[path.index(node) :], node]
                raise PySetlDefinitionError(
                    "Cycle between Factories: "
                    + " -> ".join(n.name for n in cycle)
                    + f" (each consumes the next one's output). Break it: {node.name} cannot "
                    "depend, directly or not, on its own output."
                )
            state[node] = 1
            for resolved in self.inputs[node]:
                if isinstance(resolved.source, FactoryNode):
                    visit(resolved.source, [*path, node])
            state[node] = 2
            order.append(node)

        for node in self.nodes:
            visit(node, [])
        return order

    # -- queries ---------------------------------------------------------------------------

    def upstream_factories(self, node: FactoryNode) -> list[FactoryNode]:
        seen: list[FactoryNode] = []
        for resolved in self.inputs[node]:
            if isinstance(resolved.source, FactoryNode) and resolved.source not in seen:
                seen.append(resolved.source)
        return seen

    def stage_indexes(self) -> list[int]:
        return sorted({n.stage_index for n in self.nodes if n.stage_index is not None})
