"""How a Factory (or an external input) becomes a Dagster `AssetSpec`.

One overridable method, `get_asset_spec(data)`, in the style of dagster-dlt and dagster-sling:
subclass `PySetlTranslator`, call `super().get_asset_spec(data)` and `replace_attributes` /
`merge_attributes` what you want to change.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dagster import (
    AssetKey,
    AssetSpec,
    MetadataValue,
    PartitionsDefinition,
    TableColumn,
    TableSchema,
)
from pysetl.workflow import Factory
from typedspark import DataSet

from pysetl_dagster.automation.conditions import VARIANT_TAG, Condition
from pysetl_dagster.checks.plan import Validation
from pysetl_dagster.metadata import MetadataKey
from pysetl_dagster.storage.fingerprints import code_fingerprint
from pysetl_dagster.translation.declarations import FactoryDeclarations
from pysetl_dagster.translation.graph import ExternalInput, FactoryNode, ResolvedInput, _type_name
from pysetl_dagster.translation.naming import snake_case


@dataclass(frozen=True)
class PySetlFactoryData:
    """What the translator knows about one Factory."""

    node: FactoryNode
    pipeline_name: str
    inputs: tuple[ResolvedInput, ...]
    upstream_keys: tuple[AssetKey, ...]
    """Asset keys of everything the Factory's Deliveries resolve to (Factories and externals)."""
    declarations: FactoryDeclarations = field(default_factory=FactoryDeclarations)
    """What the Factory declares (`validation`, `partitions`, `condition`, ...), read once."""

    @property
    def factory(self) -> Factory[Any]:
        """The Factory instance the pipeline holds (as added to its Stage)."""
        return self.node.factory

    @property
    def factory_type(self) -> type[Factory[Any]]:
        """The Factory's class: what declarations, names and code versions are read from."""
        return self.node.factory_type

    @property
    def stage_index(self) -> int | None:
        """The index of the Factory's Stage in the pipeline (0 first), None outside a Stage."""
        return self.node.stage_index


@dataclass(frozen=True)
class PySetlExternalData:
    """What the translator knows about one external input of the pipeline."""

    external: ExternalInput
    pipeline_name: str


TranslatorData = PySetlFactoryData | PySetlExternalData


class PySetlTranslator:
    """Maps Factories and external inputs to asset specs.

    Args:
        key_prefix: prepended to every asset key (e.g. the team or warehouse name).
    """

    def __init__(self, key_prefix: str | Sequence[str] | None = None) -> None:
        if isinstance(key_prefix, str):
            key_prefix = [key_prefix]
        self.key_prefix: tuple[str, ...] = tuple(key_prefix or ())

    def get_asset_spec(self, data: TranslatorData) -> AssetSpec:
        """The `AssetSpec` of a Factory or an external input: key, deps, description, group,
        metadata, tags, kinds and code version.

        Override it to change any of these for some Factories; call `super()` and
        `merge_attributes` / `replace_attributes` on the result, as dagster-dlt's and
        dagster-sling's translators do, so the library's metadata (which the step relies on)
        stays.

        Args:
            data: a `PySetlFactoryData` (a Factory) or a `PySetlExternalData` (an input).

        Returns:
            The spec the asset (or source asset) is built from.
        """
        if isinstance(data, PySetlExternalData):
            return self._external_spec(data)
        return self._factory_spec(data)

    def get_validation(self, data: PySetlFactoryData) -> Validation | None:
        """The pandera schema whose checks become the Factory's asset checks.

        Default: the Factory's `validation` class attribute (a `Validation`, or a bare pandera
        model / schema), else a schema generated from its typedspark `DataSet[Schema]` output
        (column presence and types). Override to add or replace schemas without touching the
        Factories.
        """
        declared = data.declarations.validation
        if declared is not None:
            return declared
        payload = data.node.payload_type
        schema = getattr(payload, "_schema_annotations", None)
        if isinstance(payload, type) and issubclass(payload, DataSet) and schema is not None:
            return Validation(schema)
        return None

    def get_partitions_def(self, data: PySetlFactoryData) -> PartitionsDefinition | None:
        """The Factory's partitions: by default its `partitions` class attribute
        (`daily(...)`, `static([...])` or a Dagster `PartitionsDefinition`), else none.
        Override to partition Factories you cannot edit."""
        return data.declarations.partitions

    def get_condition(self, data: PySetlFactoryData) -> Condition | None:
        """When the Factory runs (None: always). Default: its `condition` attribute
        (`when_config(...)`, `when_data(...)`). Override to add conditions without touching
        the Factories."""
        return data.declarations.condition

    # -- defaults --------------------------------------------------------------------------

    def _factory_spec(self, data: PySetlFactoryData) -> AssetSpec:
        node = data.node
        metadata: dict[str, Any] = {
            MetadataKey.FACTORY: MetadataValue.text(_qualified_name(node.factory_type)),
            MetadataKey.OUTPUT_TYPE: MetadataValue.text(_type_name(node.payload_type)),
            MetadataKey.INPUTS: MetadataValue.json(
                {r.attribute: _input_description(r) for r in data.inputs}
            ),
        }
        if node.stage_index is not None:
            metadata[MetadataKey.STAGE] = MetadataValue.int(node.stage_index)
        if node.delivery_id:
            metadata[MetadataKey.DELIVERY_ID] = MetadataValue.text(node.delivery_id)
        tags: dict[str, str] = {}
        declared = data.declarations
        branch = declared.branch
        if branch is not None:  # conditions.branch: one asset, two alternatives
            metadata[MetadataKey.BRANCH] = MetadataValue.json(
                {
                    "choose": branch.choose.describe(),
                    "then": type(branch.then).__name__,
                    "otherwise": type(branch.otherwise).__name__,
                }
            )
        variant = declared.variant
        if variant:  # conditions.variants: A/B paths
            metadata[VARIANT_TAG] = MetadataValue.text(variant)
            tags[VARIANT_TAG] = variant
        condition = declared.condition
        if condition is not None:
            metadata[MetadataKey.CONDITION] = MetadataValue.text(condition.describe())
        schema = table_schema_of(node.payload_type)
        if schema is not None:
            metadata["dagster/column_schema"] = MetadataValue.table_schema(schema)
        return AssetSpec(
            key=AssetKey([*self.key_prefix, snake_case(node.name)]),
            deps=data.upstream_keys,
            description=_own_docstring(node.factory_type),
            group_name=snake_case(data.pipeline_name) or None,
            kinds={"pyspark", "pysetl"},
            code_version=factory_code_version(node.factory_type),
            metadata=metadata,
            partitions_def=self.get_partitions_def(data),
            tags=tags or None,
        )

    def _external_spec(self, data: PySetlExternalData) -> AssetSpec:
        external = data.external
        metadata: dict[str, Any] = {
            MetadataKey.OUTPUT_TYPE: MetadataValue.text(_type_name(external.payload_type)),
            MetadataKey.PAYLOAD: MetadataValue.text(repr(external.payload)[:500]),
        }
        if external.delivery_id:
            metadata[MetadataKey.DELIVERY_ID] = MetadataValue.text(external.delivery_id)
        path = getattr(external.payload, "path", None)
        if isinstance(path, str):
            metadata["path"] = MetadataValue.path(path)
        return AssetSpec(
            key=AssetKey([*self.key_prefix, snake_case(external.name)]),
            description=(
                f"External input of pipeline {data.pipeline_name!r} "
                f"({_type_name(external.payload_type)}), registered with "
                "set_input_from_deliverable."
            ),
            group_name=snake_case(data.pipeline_name) or None,
            kinds={"pysetl"},
            metadata=metadata,
        )


def _qualified_name(tp: type) -> str:
    return f"{tp.__module__}.{tp.__qualname__}"


def _own_docstring(tp: type) -> str | None:
    doc = tp.__dict__.get("__doc__")
    return inspect.cleandoc(doc) if isinstance(doc, str) else None


def _input_description(resolved: ResolvedInput) -> str:
    return f"{_type_name(resolved.payload_type)} from {resolved.source!r}"


def table_schema_of(payload_type: Any) -> TableSchema | None:
    """Columns of a typedspark `DataSet[Schema]` output, without touching Spark."""
    schema = getattr(payload_type, "_schema_annotations", None)
    if not (isinstance(payload_type, type) and issubclass(payload_type, DataSet)) or schema is None:
        return None
    try:
        struct = schema.get_structtype()
    except Exception:  # a schema typedspark cannot render: leave the metadata out
        return None
    return TableSchema(
        columns=[
            TableColumn(name=f.name, type=f.dataType.simpleString(), description=None)
            for f in struct.fields
        ]
    )


def factory_code_version(factory_type: type) -> str:
    """A hash that changes when the Factory's code changes, or the code of the user's own
    functions, classes and constants it uses, in any module (see `fingerprints`).

    It is the asset's `code_version`, so Dagster's "code changed" marker agrees with the cache.
    """
    return code_fingerprint(factory_type)[0]
