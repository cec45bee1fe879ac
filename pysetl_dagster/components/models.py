"""The `defs.yaml` attributes of `PySetlPipelineComponent` that are more than one value.

Every model forbids unknown keys (dagster's `Model`), so `dg check defs` reports a misspelled
attribute with the file, line and key instead of ignoring it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from dagster import AssetSpec
from dagster.components import Model, ResolutionContext, Resolvable
from pydantic import Field, model_validator

from pysetl_dagster.translation.naming import snake_case
from pysetl_dagster.translation.translator import PySetlFactoryData


class ScheduleModel(Resolvable, Model):
    """One schedule of the pipeline: a cron over the whole pipeline, or its latest partition.

    Attributes:
        cron: a cron expression (`"0 2 * * *"`); the schedule materializes every Factory.
        latest_partition: instead of a cron, run the time-partitioned job on its latest
            partition once a day at `hour_of_day:minute_of_hour`.
        name: the schedule's name (default `<pipeline>_schedule`, or
            `<pipeline>_latest_partition`).
        timezone: an IANA timezone of the cron (`Europe/Paris`).
        enabled: whether it starts running (default: the profile decides, else stopped).
        hour_of_day: the hour of a `latest_partition` schedule.
        minute_of_hour: the minute of a `latest_partition` schedule.
    """

    cron: str | None = None
    latest_partition: bool = False
    name: str | None = None
    timezone: str | None = None
    enabled: bool | None = None
    hour_of_day: int = Field(default=0, ge=0, le=23)
    minute_of_hour: int = Field(default=0, ge=0, le=59)

    @model_validator(mode="after")
    def _one_kind(self) -> ScheduleModel:
        """A schedule is either a cron or the latest partition: never both, never neither."""
        if (self.cron is None) == (not self.latest_partition):
            raise ValueError(
                "give a schedule either `cron: '0 2 * * *'` or `latest_partition: true`"
            )
        return self


class SensorModel(Resolvable, Model):
    """One sensor of the pipeline (see `PySetlPipelineDefinitions.on_new_files` etc.).

    Attributes:
        kind: `new_files` (files arriving in `folder`), `upstream` (another pipeline's asset
            this pipeline reads was materialized) or `failure` (record failed runs).
        name: the sensor's name (default `<pipeline>_new_files` / `_on_upstream` /
            `_on_failure`).
        folder: the folder a `new_files` sensor watches (relative to this `defs.yaml`).
        pattern: the file pattern of a `new_files` sensor.
        factories: the Factories (class names) a `new_files` sensor runs (default: those
            reading the folder).
        settle_seconds: how long a new file must stay unchanged before it counts.
        hook: `module:function` called with each failed run's record (`failure`).
        webhook_url: a URL a `failure` sensor POSTs each failed run's record to.
        webhook_url_env: the environment variable holding that URL (read when the sensor
            runs: the URL stays out of the code and the UI).
        minimum_interval_seconds: the sensor's minimum interval.
        running: start the sensor running (default: stopped).
    """

    kind: Literal["new_files", "upstream", "failure"]
    name: str | None = None
    folder: str | None = None
    pattern: str = "*"
    factories: list[str] | None = None
    settle_seconds: float = Field(default=10.0, ge=0)
    hook: str | None = Field(default=None, pattern=r"^\.?[\w.]+:[\w.]+$")
    webhook_url: str | None = None
    webhook_url_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    minimum_interval_seconds: int = Field(default=30, ge=1)
    running: bool = False

    @model_validator(mode="after")
    def _fits_kind(self) -> SensorModel:
        """Each kind needs its own fields: a folder for `new_files`, a hook or URL for
        `failure`; a field of another kind is a mistake worth reporting."""
        if self.kind == "new_files" and not self.folder:
            raise ValueError("a `new_files` sensor needs `folder:` (the folder it watches)")
        if self.kind == "failure" and not (self.hook or self.webhook_url or self.webhook_url_env):
            raise ValueError(
                "a `failure` sensor needs `hook: module:function`, `webhook_url` or "
                "`webhook_url_env`"
            )
        if self.kind != "new_files" and (self.folder or self.factories):
            raise ValueError(
                f"`folder` and `factories` belong to `new_files` sensors, not {self.kind!r}"
            )
        return self


class AssetAttributesModel(Model):
    """What the translation may change on a Factory's asset: never its key or dependencies,
    which PySetl's wiring decides.

    Attributes:
        description: replaces the description (default: the Factory's docstring).
        tags: added to the asset's tags.
        kinds: added to the asset's kinds (`pyspark`, `pysetl`).
        owners: added to the asset's owners (`team:data`, `someone@example.com`).
        metadata: added to the asset's definition metadata.
    """

    description: str | None = None
    tags: dict[str, str] | None = None
    kinds: list[str] | None = None
    owners: list[str] | None = None
    metadata: dict[str, Any] | None = None


class TranslationModel(AssetAttributesModel):
    """The `translation:` block: attributes for every Factory, then per Factory.

    String values are Jinja templates rendered per Factory with `factory` (class name),
    `asset` (asset key, as a string), `stage` (Stage index or None), `pipeline` (the
    pipeline's name) and `spec` (the default `AssetSpec`), as dagster-dbt's `translation`
    renders with `node`.

    Attributes:
        factories: Factory class name (`CleanOrders`) or asset name (`clean_orders`) -> the
            attributes of that Factory only (applied after those for all).
    """

    factories: dict[str, AssetAttributesModel] | None = None


@dataclass(frozen=True)
class Translation:
    """A resolved `translation:` block, applied to each Factory's default spec.

    The block is kept unrendered until a Factory is known, so its templates can name it.
    """

    model: TranslationModel
    context: ResolutionContext

    def factory_names(self) -> set[str]:
        """The Factory names of the per-Factory section, to report one that matches nothing."""
        return set((self.model.factories or {}).keys())

    def apply(self, spec: AssetSpec, data: PySetlFactoryData) -> AssetSpec:
        """The spec with the attributes for all Factories, then this Factory's, applied."""
        scope = {
            "factory": data.node.name,
            "asset": spec.key.to_user_string(),
            "stage": data.stage_index,
            "pipeline": data.pipeline_name,
            "spec": spec,
        }
        everyone = self.model.model_dump(exclude_unset=True, exclude={"factories"})
        spec = self._merge(spec, everyone, ("translation",), scope)
        factories = self.model.factories or {}
        for name in (data.node.name, snake_case(data.node.name)):
            if name in factories:
                own = factories[name].model_dump(exclude_unset=True)
                spec = self._merge(spec, own, ("translation", "factories", name), scope)
        return spec

    def _merge(
        self,
        spec: AssetSpec,
        attributes: Mapping[str, Any],
        path: tuple[str, ...],
        scope: Mapping[str, Any],
    ) -> AssetSpec:
        """Render `attributes` for one Factory and merge them into its spec."""
        if not attributes:
            return spec
        context = self.context
        for part in path[1:]:
            context = context.at_path(part)
        rendered = context.with_scope(**scope).resolve_value(dict(attributes))
        if rendered.get("description") is not None:
            spec = spec.replace_attributes(description=str(rendered["description"]))
        merged: dict[str, Any] = {}
        if rendered.get("tags"):
            merged["tags"] = {str(k): str(v) for k, v in rendered["tags"].items()}
        if rendered.get("kinds"):
            merged["kinds"] = {str(k) for k in rendered["kinds"]}
        if rendered.get("owners"):
            merged["owners"] = [str(o) for o in rendered["owners"]]
        if rendered.get("metadata"):
            merged["metadata"] = dict(rendered["metadata"])
        return spec.merge_attributes(**merged) if merged else spec


def resolve_translation(context: ResolutionContext, model: Any) -> Translation | None:
    """The `translation:` block, kept with its resolution context for per-Factory rendering."""
    if model is None:
        return None
    if not isinstance(model, TranslationModel):
        model = TranslationModel.model_validate(model)
    return Translation(model, context)


__all__ = [
    "AssetAttributesModel",
    "ScheduleModel",
    "SensorModel",
    "Translation",
    "TranslationModel",
    "resolve_translation",
]
