"""One call from a PySetl Pipeline to everything Dagster shows for it, and to `Definitions`.

    pipeline_defs = pysetl_pipeline(build_pipeline(), name="retail")
    defs = build_definitions(pipeline_defs, storage_path="data/warehouse")

gives an asset per Factory (and per external input), an asset job (on `pysetl_executor`:
independent Factories at once, threads over one SparkSession or processes under Spark Connect),
a Stage job (Stages in order in one process, a Stage's Factories at once), and the resources
they need.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dagster import (
    AssetKey,
    AssetsDefinition,
    AssetSelection,
    AssetSpec,
    JobDefinition,
    MetadataValue,
    ScheduleDefinition,
    SensorDefinition,
    define_asset_job,
)
from dagster._core.definitions.partitions.partitioned_schedule import (
    UnresolvedPartitionedAssetScheduleDefinition,
)
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)
from pysetl.workflow import Deliverable, Factory, Pipeline

from pysetl_dagster.automation.partition_schedules import latest_partition_schedule
from pysetl_dagster.automation.schedules import (
    AutomationDeclaration,
    apply_automation,
    pipeline_schedule,
)
from pysetl_dagster.automation.sensors import (
    FailureHook,
    failure_sensor,
    new_files_sensor,
    resolve_factories,
    upstream_sensor,
)
from pysetl_dagster.defs.assets import asset_signature, build_pysetl_assets
from pysetl_dagster.defs.executor import pysetl_executor
from pysetl_dagster.defs.jobs import partition_groups, partition_job_names, stage_job_partitions
from pysetl_dagster.defs.ops import build_stage_job
from pysetl_dagster.defs.templates import extend_pipeline, factory_run_config
from pysetl_dagster.errors import PySetlDefinitionError
from pysetl_dagster.metadata import MetadataKey
from pysetl_dagster.translation.diagram import mermaid_diagram
from pysetl_dagster.translation.graph import PipelineGraph
from pysetl_dagster.translation.links import UpstreamAsset
from pysetl_dagster.translation.naming import snake_case
from pysetl_dagster.translation.specs import FactoryRef, TranslatedPipeline, translate
from pysetl_dagster.translation.translator import PySetlTranslator

AnySchedule = ScheduleDefinition | UnresolvedPartitionedAssetScheduleDefinition


@dataclass
class PySetlPipelineDefinitions:
    """The Dagster side of one PySetl pipeline."""

    name: str
    translated: TranslatedPipeline
    assets: list[AssetsDefinition | AssetSpec]
    asset_job: UnresolvedAssetJobDefinition
    stage_job: JobDefinition | None
    diagram: str
    schedules: list[AnySchedule] = field(default_factory=list)
    sensors: list[SensorDefinition] = field(default_factory=list)
    partition_jobs: list[UnresolvedAssetJobDefinition] = field(default_factory=list)
    """Extra asset jobs, one per further partitions definition (Dagster wants one per job)."""
    translator: PySetlTranslator | None = None
    latest_partition_args: dict[str, tuple[UnresolvedAssetJobDefinition, dict[str, Any]]] = field(
        default_factory=dict
    )
    factory_config: Mapping[type[Factory[Any]], Mapping[str, Any]] | None = None
    io_manager_key: str = "io_manager"
    """The resource key of the storage the pipeline's outputs go through."""
    profile_flags: dict[str, Any] = field(default_factory=dict)
    """Config flag -> value or `EnvVar`, from the profile `build_definitions` was given: what
    the pipeline's branching sensors decide with when their own flags and tags say nothing."""
    signatures: dict[AssetKey, tuple[Any, ...]] = field(default_factory=dict)
    """Asset key -> what defines that Factory asset (see `defs.assets.asset_signature`):
    `build_definitions` keeps one asset per key when two pipelines define it the same way."""

    @property
    def jobs(self) -> list[JobDefinition | UnresolvedAssetJobDefinition]:
        """Every job of the pipeline: the asset job, partition jobs, the Stage job."""
        stage = [self.stage_job] if self.stage_job is not None else []
        return [self.asset_job, *self.partition_jobs, *stage]

    @property
    def graph(self) -> PipelineGraph:
        """The resolved PySetl graph (Factories, Deliveries, Stages) the definitions come from:
        what `describe`, sensors and schedules read to find Factories and their keys."""
        return self.translated.graph

    def asset_key(self, factory: type[Factory[Any]] | Factory[Any]) -> AssetKey:
        """The asset key of a Factory (class or instance) of this pipeline."""
        factory_type = factory if isinstance(factory, type) else type(factory)
        for node, spec in self.translated.factory_specs.items():
            if node.factory_type is factory_type:
                return spec.key
        raise KeyError(f"Factory {factory_type.__name__} is not in pipeline {self.name!r}")

    def daily_schedule(self, cron: str = "0 2 * * *", **kwargs: Any) -> ScheduleDefinition:
        """A schedule that materializes the whole pipeline (default: every day at 02:00)."""
        return self.schedule(cron=cron, name=f"{snake_case(self.name)}_daily", **kwargs)

    # -- declarations: schedules, sensors, links (see schedules.py, sensors.py, links.py) --

    def schedule(
        self,
        cron: str,
        *,
        timezone: str | None = None,
        enabled: bool | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> ScheduleDefinition:
        """A cron schedule of the whole pipeline (`enabled`: its default status; None lets a
        profile decide, else stopped)."""
        schedule = pipeline_schedule(
            self, cron=cron, timezone=timezone, enabled=enabled, name=name, **kwargs
        )
        self.schedules.append(schedule)
        return schedule

    def on_new_files(
        self,
        folder: str | os.PathLike[str],
        *,
        factories: Sequence[FactoryRef] | None = None,
        **kwargs: Any,
    ) -> SensorDefinition:
        """Run the Factories reading `folder` (and their dependents) when files arrive there."""
        return self._sensor(new_files_sensor(self, folder, factories=factories, **kwargs))

    def on_upstream(self, **kwargs: Any) -> SensorDefinition:
        """Run the Factories reading another pipeline's asset when that asset changes."""
        return self._sensor(upstream_sensor(self, **kwargs))

    def branch_sensor(self, **kwargs: Any) -> SensorDefinition:
        """Decide the pipeline's conditions before any run starts and run only the Factories
        whose conditions hold (see `pysetl_dagster.automation.branching.branch_sensor`)."""
        from pysetl_dagster.automation.branching import branch_sensor  # only its users load it

        kwargs.setdefault("io_manager_key", self.io_manager_key)
        return self._sensor(branch_sensor(self, **kwargs))

    def on_failure(self, hook: FailureHook | None = None, **kwargs: Any) -> SensorDefinition:
        """Record failed runs of this pipeline and call `hook` and/or `webhook_url`."""
        return self._sensor(failure_sensor(self, hook=hook, **kwargs))

    def _sensor(self, sensor: SensorDefinition) -> SensorDefinition:
        if any(s.name == sensor.name for s in self.sensors):
            raise PySetlDefinitionError(
                f"Pipeline {self.name!r} already has a sensor named {sensor.name!r}: pass name=."
            )
        self.sensors.append(sensor)
        return sensor

    def output(self, factory: type[Factory[Any]] | str) -> Deliverable[Any]:
        """This pipeline's Factory output as an external input of another pipeline:
        `other.set_input_from_deliverable(retail.output(EnrichedOrders))`. The consumer then
        depends on this pipeline's asset and reads its stored version; no asset is duplicated."""
        (node,) = resolve_factories(self, [factory], f"{self.name}.output(...)")
        link = UpstreamAsset(self.name, node.name, self.translated.key_of(node))
        deliverable_type: Any = Deliverable[node.payload_type]  # type: ignore[name-defined]
        return deliverable_type(link, delivery_id=node.delivery_id)  # type: ignore[no-any-return]

    def latest_partition_schedule(
        self, *, hour_of_day: int = 0, minute_of_hour: int = 0, **kwargs: Any
    ) -> AnySchedule:
        """A schedule running the pipeline's time-partitioned job on its latest partition
        (for `daily(...)`: every day, yesterday's partition), named `<name>_latest_partition`."""
        # The jobs' partitions, in job order: an asset job infers its own only at load time.
        partitions = [p for p, _ in partition_groups(self.translated)]
        job, partitions_def = next(
            (
                (j, p)
                for j, p in zip((self.asset_job, *self.partition_jobs), partitions, strict=True)
                if p is not None
            ),
            (self.asset_job, None),
        )
        args = {
            "hour_of_day": hour_of_day,
            "minute_of_hour": minute_of_hour,
            "partitions_def": partitions_def,
            **kwargs,
        }
        name = f"{snake_case(self.name)}_latest_partition"
        schedule = latest_partition_schedule(job, name=name, **args)
        self.latest_partition_args[name] = (job, args)
        self.schedules.append(schedule)
        return schedule

    def extend(
        self,
        name: str,
        *,
        add: Iterable[type[Factory[Any]] | Factory[Any]] = (),
        replace: Mapping[type[Factory[Any]], type[Factory[Any]] | Factory[Any]] | None = None,
        translator: PySetlTranslator | None = None,
    ) -> PySetlPipelineDefinitions:
        """This pipeline with Factories added (a last Stage) or replaced, as pipeline `name`
        (see `templates.extend_pipeline`); the translator and Factory config are kept."""
        source = self.graph.pipeline
        if source is None:
            raise PySetlDefinitionError(
                f"Pipeline {self.name!r} was built from a list of Factories: extend that list "
                "and call pysetl_pipeline again."
            )
        extended = extend_pipeline(source, add=add, replace=replace)
        kept = {type(f) for stage in extended.stages for f in stage.factories}
        config = {t: v for t, v in (self.factory_config or {}).items() if t in kept}
        return pysetl_pipeline(
            extended,
            name=name,
            translator=translator or self.translator,
            io_manager_key=self.io_manager_key,
            factory_config=config or None,
        )


def pysetl_pipeline(
    pipeline: Pipeline | Iterable[Factory[Any]],
    *,
    name: str,
    translator: PySetlTranslator | None = None,
    externals: Sequence[Deliverable[Any]] = (),
    io_manager_key: str = "io_manager",
    automation_condition: AutomationDeclaration = None,
    factory_config: Mapping[type[Factory[Any]], Mapping[str, Any]] | None = None,
    stage_job: bool | None = None,
) -> PySetlPipelineDefinitions:
    """Translate a PySetl Pipeline (or a plain list of Factories) into Dagster definitions.

    Args:
        pipeline: a `pysetl.workflow.Pipeline` with its Stages and external inputs, or
            Factories with no Stages (ordered by their Deliveries; a cycle is an error).
        name: the pipeline's name: asset group, job names (`<name>_assets`, `<name>_stages`).
        translator: maps Factories to asset specs; subclass `PySetlTranslator` to customise.
        externals: external inputs, when `pipeline` is a list of Factories.
        automation_condition: an `AutomationCondition` for every Factory, or Factory ->
            condition (Dagster's declarative automation instead of sensors).
        factory_config: Factory class -> values of its nested `Config`, the default run config
            of the pipeline's jobs (e.g. one per template instance).
        stage_job: build the Stage job (default: when the pipeline has Stages and its
            Factories are all unpartitioned or all share one partitions definition).
    """
    if not name or snake_case(name) != name:
        raise PySetlDefinitionError(
            f"Pipeline name {name!r} must be snake_case (letters, digits, `_`), e.g. "
            f"{snake_case(name) or 'retail'!r}: it names the asset group and the jobs."
        )
    if isinstance(pipeline, Pipeline):
        graph = PipelineGraph.from_pipeline(pipeline, name)
    else:
        graph = PipelineGraph.from_factories(pipeline, name, externals)
    translator = translator or PySetlTranslator()
    translated = translate(graph, translator)
    apply_automation(translated, automation_condition)
    assets = build_pysetl_assets(translated, io_manager_key=io_manager_key)
    diagram = mermaid_diagram(translated)
    description = f"PySetl pipeline `{name}`\n\n```mermaid\n{diagram}\n```"
    metadata = {MetadataKey.DIAGRAM: MetadataValue.md(f"```mermaid\n{diagram}\n```")}
    asset_config, stage_config = factory_run_config(name, translated, factory_config or {})
    groups = partition_groups(translated)
    job_names = partition_job_names(name, groups)
    asset_jobs = [
        define_asset_job(
            name=job_name,
            selection=AssetSelection.assets(*keys),
            executor_def=pysetl_executor,
            description=description,
            metadata=metadata,
            config=_config_for(asset_config, translated, keys) if factory_config else None,
        )
        for job_name, (_, keys) in zip(job_names, groups, strict=True)
    ]
    stage_partitions = stage_job_partitions(name, translated, groups, wanted=stage_job)
    built_stage_job = None
    if graph.stage_indexes() and stage_job is not False and stage_partitions is not False:
        assert not isinstance(stage_partitions, bool)
        built_stage_job = build_stage_job(
            translated,
            name=f"{name}_stages",
            io_manager_key=io_manager_key,
            description=description,
            metadata=metadata,
            partitions_def=stage_partitions or None,
            config=stage_config if factory_config else None,
        )
    return PySetlPipelineDefinitions(
        name=name,
        translated=translated,
        assets=assets,
        asset_job=asset_jobs[0],
        stage_job=built_stage_job,
        diagram=diagram,
        partition_jobs=asset_jobs[1:],
        translator=translator,
        factory_config=factory_config,
        io_manager_key=io_manager_key,
        signatures={
            translated.key_of(node): asset_signature(translated, node, io_manager_key)
            for node in translated.graph.nodes
        },
    )


def _config_for(
    asset_config: dict[str, Any], translated: TranslatedPipeline, keys: Sequence[AssetKey]
) -> dict[str, Any]:
    """The asset run config restricted to the ops of one job's assets."""
    ops = {k.to_python_identifier() for k in keys}
    return {"ops": {op: c for op, c in asset_config["ops"].items() if op in ops}}


@dataclass(frozen=True)
class PySetlTemplate:
    """A parameterised pipeline: `build(**params)` returns a PySetl Pipeline."""

    build: Callable[..., Pipeline]
    name: str

    def instance(
        self,
        key: str,
        *,
        factory_config: Mapping[type[Factory[Any]], Mapping[str, Any]] | None = None,
        translator: PySetlTranslator | None = None,
        **params: Any,
    ) -> PySetlPipelineDefinitions:
        """One instance: pipeline `<name>_<key>`, asset keys prefixed with `key`."""

        if snake_case(key) != key:
            raise PySetlDefinitionError(
                f"Template {self.name!r}: instance key {key!r} must be snake_case "
                f"(e.g. {snake_case(key)!r}): it prefixes asset keys and names jobs."
            )
        return pysetl_pipeline(
            self.build(**params),
            name=f"{self.name}_{key}",
            translator=translator or PySetlTranslator(key_prefix=key),
            factory_config=factory_config,
        )


def pysetl_template(build: Callable[..., Pipeline], *, name: str | None = None) -> PySetlTemplate:
    """A template from a function building a PySetl Pipeline from parameters.

    Args:
        build: a function returning a `pysetl.workflow.Pipeline` for its keyword parameters.
        name: the template's name, prefix of every instance's name (default: the function's
            name without `build_`).
    """
    template_name = name or snake_case(build.__name__.removeprefix("build_")) or "pipeline"
    return PySetlTemplate(build, template_name)
