"""One call from a PySetl Pipeline to everything Dagster shows for it, and to `Definitions`.

    pipeline_defs = pysetl_pipeline(build_pipeline(), name="retail")
    defs = build_definitions(pipeline_defs, storage_path="data/warehouse")

gives an asset per Factory (and per external input), an asset job and a Stage job (both on the
in-process executor: one process, one SparkSession a run), and the resources they need.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dagster import (
    AssetKey,
    AssetsDefinition,
    AssetSelection,
    AssetSpec,
    Definitions,
    JobDefinition,
    MetadataValue,
    ScheduleDefinition,
    SensorDefinition,
    define_asset_job,
    in_process_executor,
)
from dagster._core.definitions.partitions.partitioned_schedule import (
    UnresolvedPartitionedAssetScheduleDefinition,
)
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)
from pysetl.workflow import Deliverable, Factory, Pipeline

from .assets import TranslatedPipeline, build_pysetl_assets, translate
from .diagram import mermaid_diagram
from .errors import PySetlDefinitionError
from .graph import PipelineGraph
from .io_managers import SparkParquetIOManager
from .links import UpstreamAsset, link_of, missing_links
from .naming import snake_case
from .observation import build_input_observation
from .ops import build_stage_job
from .partitions import (
    latest_partition_schedule,
    partition_groups,
    partition_job_names,
    stage_job_partitions,
)
from .profiles import Profile
from .resources import PySparkSessionResource
from .schedules import AutomationDeclaration, apply_automation, pipeline_schedule, profiled_schedule
from .sensors import (
    FactoryRef,
    FailureHook,
    failure_sensor,
    new_files_sensor,
    resolve_factories,
    upstream_sensor,
)
from .templates import extend_pipeline, factory_run_config
from .translator import PySetlTranslator

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

    @property
    def jobs(self) -> list[JobDefinition | UnresolvedAssetJobDefinition]:
        """Every job of the pipeline: the asset job, partition jobs, the Stage job."""
        stage = [self.stage_job] if self.stage_job is not None else []
        return [self.asset_job, *self.partition_jobs, *stage]

    @property
    def graph(self) -> PipelineGraph:
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
        job = next(
            (j for j in (self.asset_job, *self.partition_jobs) if j.partitions_def is not None),
            self.asset_job,
        )
        args = {"hour_of_day": hour_of_day, "minute_of_hour": minute_of_hour, **kwargs}
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
    metadata = {"pysetl/diagram": MetadataValue.md(f"```mermaid\n{diagram}\n```")}
    asset_config, stage_config = factory_run_config(name, translated, factory_config or {})
    groups = partition_groups(translated)
    job_names = partition_job_names(name, groups)
    asset_jobs = [
        define_asset_job(
            name=job_name,
            selection=AssetSelection.assets(*keys),
            executor_def=in_process_executor,
            description=description,
            metadata=metadata,
            partitions_def=partitions_def,
            config=_config_for(asset_config, translated, keys) if factory_config else None,
        )
        for job_name, (partitions_def, keys) in zip(job_names, groups, strict=True)
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
    )


def _config_for(
    asset_config: dict[str, Any], translated: TranslatedPipeline, keys: Sequence[AssetKey]
) -> dict[str, Any]:
    """The asset run config restricted to the ops of one job's assets."""
    ops = {k.to_python_identifier() for k in keys}
    return {"ops": {op: c for op, c in asset_config["ops"].items() if op in ops}}


def default_storage_path() -> str:
    """`$PYSETL_DAGSTER_STORAGE`, else `storage/` under `$DAGSTER_HOME` (or the cwd)."""
    explicit = os.environ.get("PYSETL_DAGSTER_STORAGE")
    if explicit:
        return explicit
    return os.path.join(os.environ.get("DAGSTER_HOME", os.getcwd()), "pysetl_storage")


def _observable_inputs(
    assets: list[AssetsDefinition | AssetSpec], pipelines: Sequence[PySetlPipelineDefinitions]
) -> list[AssetsDefinition | AssetSpec]:
    """The pipelines' own external inputs (each key once) become one observable source asset
    definition, so the UI can tell when an input file changed (see `observation`)."""
    externals = {
        spec.key: ext
        for p in pipelines
        for ext, spec in p.translated.external_specs.items()
        if link_of(ext) is None
    }
    sources = [a for a in assets if isinstance(a, AssetSpec) and a.key in externals]
    if not sources:
        return assets
    observation = build_input_observation({externals[s.key]: s for s in sources})
    return [a for a in assets if not any(a is s for s in sources)] + [observation]


def build_definitions(
    *pipelines: PySetlPipelineDefinitions,
    resources: Mapping[str, Any] | None = None,
    storage_path: str | None = None,
    spark_config: Mapping[str, Any] | None = None,
    schedules: Sequence[ScheduleDefinition] = (),
    sensors: Sequence[SensorDefinition] = (),
    assets: Sequence[AssetsDefinition | AssetSpec] = (),
    jobs: Sequence[JobDefinition | UnresolvedAssetJobDefinition] = (),
    profile: Profile | None = None,
) -> Definitions:
    """`Definitions` for one or many pipelines, with default Spark and storage resources.

    Assets shared by several pipelines (the same Factory, same key, same inputs) appear once;
    two different definitions of one key are an error naming both pipelines.

    With a `profile` (see `pysetl_dagster.profiles`), Spark master and settings, the storage
    root, extra resources and whether the pipelines' schedules run come from it; explicit
    arguments still win.
    """
    by_name: dict[str, PySetlPipelineDefinitions] = {}
    for p in pipelines:
        seen = by_name.setdefault(p.name, p)
        if seen is not p and not (
            len(seen.assets) == len(p.assets)
            and all(a is b for a, b in zip(seen.assets, p.assets, strict=True))
        ):
            raise PySetlDefinitionError(
                f"Two different pipelines are both named {p.name!r}: their jobs would clash. "
                "Give each pysetl_pipeline(...) its own name."
            )
    pipelines = tuple(by_name.values())
    merged: dict[AssetKey, tuple[str, AssetsDefinition | AssetSpec]] = {}
    for p in pipelines:
        for asset in p.assets:
            keys = [asset.key] if isinstance(asset, AssetSpec) else list(asset.keys)
            for key in keys:
                if key not in merged:
                    merged[key] = (p.name, asset)
                    continue
                other_pipeline, other = merged[key]
                if other is asset or (
                    isinstance(asset, AssetSpec)
                    and isinstance(other, AssetSpec)
                    and other.metadata == asset.metadata
                ):
                    continue
                raise PySetlDefinitionError(
                    f"Asset {key.to_user_string()!r} is defined differently by pipelines "
                    f"{other_pipeline!r} and {p.name!r}. Give one a key_prefix "
                    "(PySetlTranslator(key_prefix=...)) or make the Factories' inputs identical."
                )
    missing = missing_links({p.name: p.translated for p in pipelines}, set(merged))
    if missing:
        name, link = missing[0]
        raise PySetlDefinitionError(
            f"Pipeline {name!r} reads {link.key.to_user_string()!r}, the output of Factory "
            f"{link.factory} of pipeline {link.pipeline!r}, which is not in these Definitions. "
            f"Pass that pipeline to build_definitions too."
        )
    # A multi-key definition appears once per key in `merged`; keep each object once, in order.
    unique = list({id(asset): asset for _, asset in merged.values()}.values())
    unique = _observable_inputs(unique, pipelines)

    if profile is None:
        all_resources: dict[str, Any] = {
            "pyspark": PySparkSessionResource(spark_config=dict(spark_config or {})),
            "io_manager": SparkParquetIOManager(base_path=storage_path or default_storage_path()),
        }
    else:
        all_resources = {
            "pyspark": profile.spark_resource(spark_config),
            "io_manager": SparkParquetIOManager(
                base_path=storage_path or profile.storage_root() or default_storage_path(),
                keep_versions=profile.storage.keep_versions,
                validation_depth=profile.validation,
            ),
            **profile.build_resources(),
        }
    all_resources.update(resources or {})
    all_jobs: list[JobDefinition | UnresolvedAssetJobDefinition] = []
    for p in pipelines:
        all_jobs.extend(p.jobs)
    return Definitions(
        assets=[*unique, *assets],
        jobs=[*all_jobs, *jobs],
        schedules=[*_pipeline_schedules(pipelines, profile), *schedules],
        sensors=[
            *(profile.metric_sensors() if profile is not None else []),
            *(s for p in pipelines for s in p.sensors),
            *sensors,
        ],
        resources=all_resources,
        executor=in_process_executor,
    )


def _pipeline_schedules(
    pipelines: Sequence[PySetlPipelineDefinitions], profile: Profile | None
) -> list[AnySchedule]:
    """The pipelines' schedules; a profile decides whether they run and may set their cron."""
    if profile is None:
        return [s for p in pipelines for s in p.schedules]
    result: list[AnySchedule] = []
    for p in pipelines:
        for s in p.schedules:
            if s.name in p.latest_partition_args:  # its cron follows the partitions
                job, args = p.latest_partition_args[s.name]
                result.append(
                    latest_partition_schedule(
                        job, name=s.name, default_status=profile.schedule_status, **args
                    )
                )
                continue
            assert isinstance(s, ScheduleDefinition)
            result.append(profiled_schedule(s, p, profile))
    return result
