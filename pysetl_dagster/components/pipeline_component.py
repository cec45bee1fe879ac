"""`PySetlPipelineComponent`: a PySetl Pipeline configured in a `defs.yaml`, for `dg`.

    # defs/retail/defs.yaml
    type: pysetl_dagster.PySetlPipelineComponent
    attributes:
      pipeline: my_project.pipeline:build_pipeline    # module:attribute (".x:y": beside this file)
      params: {data_dir: "{{ env.RETAIL_DATA_DIR }}"}
      name: retail
      schedules: [{cron: "0 2 * * *", name: retail_daily}]
      translation:
        owners: [team:data]
        factories: {CleanOrders: {tags: {layer: silver}}}

The component builds through the definition API (`pysetl_pipeline`, `build_definitions`,
`PySetlTranslator`), so what it gives is what the Python code gives.

Several components in one code location are assembled *together*, as one
`build_definitions(...)` call would: a Factory asset two pipelines share appears once, external
inputs are one observable source definition, a pipeline may read another's output
(`pipeline_params`), and the Spark and storage resources are one object each. The assembly is
done once per load by the first component of the tree and kept on that component (no state
outside the load).
"""

import importlib
import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from dagster import (
    AssetSpec,
    DefaultSensorStatus,
    Definitions,
    EnvVar,
)
from dagster.components import (
    Component,
    ComponentLoadContext,
    Resolvable,
    Resolver,
    scaffold_with,
)
from pydantic import BaseModel
from pysetl.workflow import Factory, Pipeline

from pysetl_dagster.components.models import (
    ScheduleModel,
    SensorModel,
    Translation,
    TranslationModel,
    resolve_translation,
)
from pysetl_dagster.components.scaffolder import PySetlPipelineScaffolder
from pysetl_dagster.defs.build import build_definitions
from pysetl_dagster.defs.pipeline import PySetlPipelineDefinitions, PySetlTemplate, pysetl_pipeline
from pysetl_dagster.defs.profiles import Profile, load_profile
from pysetl_dagster.errors import PySetlDefinitionError
from pysetl_dagster.translation.naming import snake_case
from pysetl_dagster.translation.translator import (
    PySetlFactoryData,
    PySetlTranslator,
    TranslatorData,
)


class ComponentTranslator(PySetlTranslator):
    """`PySetlTranslator` with a component's key prefix, group and `translation:` block.

    Args:
        key_prefix: prepended to every asset key.
        group: the asset group of every asset (default: the pipeline's name).
        translation: the resolved `translation:` block, applied to Factories.
    """

    def __init__(
        self,
        key_prefix: str | Sequence[str] | None = None,
        group: str | None = None,
        translation: Translation | None = None,
    ) -> None:
        super().__init__(key_prefix=key_prefix)
        self.group = group
        self.translation = translation

    def get_asset_spec(self, data: TranslatorData) -> AssetSpec:
        """The default spec, in the component's group, with its translation applied."""
        spec = super().get_asset_spec(data)
        if self.group:
            spec = spec.replace_attributes(group_name=self.group)
        if self.translation is not None and isinstance(data, PySetlFactoryData):
            spec = self.translation.apply(spec, data)
        return spec


@dataclass(frozen=True)
class _Origin:
    """Where a component was declared: errors name the file, relative references resolve."""

    folder: Path
    module: str | None

    @property
    def file(self) -> Path:
        """The component's `defs.yaml`."""
        return self.folder / "defs.yaml"


def _translation_resolver() -> Resolver:
    """Keeps the `translation:` block unrendered until each Factory is known."""
    return Resolver(
        resolve_translation,
        model_field_type=TranslationModel | None,
        inject_before_resolve=False,
    )


@scaffold_with(PySetlPipelineScaffolder)
@dataclass
class PySetlPipelineComponent(Component, Resolvable):
    """A PySetl Pipeline as Dagster assets, checks, jobs, schedules and sensors, from YAML.

    Scaffold one with `dg scaffold defs pysetl_dagster.PySetlPipelineComponent my_pipeline`
    (a sample Factory and its `defs.yaml`), or point `pipeline:` at your own code.

    Attributes:
        pipeline: where the Pipeline comes from, `module:attribute` (`.module:attribute`: a
            module beside this `defs.yaml`). The attribute is a `pysetl.workflow.Pipeline`, a
            function returning one (or returning `PySetlPipelineDefinitions`), or a template
            (`pysetl_template(...)`, with `instance:`).
        params: keyword arguments of that function (or template), e.g. a data folder.
        pipeline_params: keyword argument -> name of another PySetl pipeline component of
            this project, passed as its `PySetlPipelineDefinitions` (a pipeline reading another's
            output: `retail.output(EnrichedOrders)`).
        instance: the instance key when `pipeline` is a template: pipeline
            `<template>_<instance>`, asset keys prefixed with it.
        name: the pipeline's name: asset group and job names (default: this folder's name).
        key_prefix: prepended to every asset key.
        group: the asset group (default: the pipeline's name).
        factory_config: Factory class name -> values of its nested `Config` (the jobs'
            default run config).
        stage_job: build the `<name>_stages` job (default: when the pipeline has Stages).
        profile: a profile file (`profiles.yaml`, relative to this `defs.yaml`): Spark, storage,
            schedules and resources per environment (see `load_profile`).
        profile_name: the profile to use (default `$PYSETL_DAGSTER_PROFILE`, else `dev`).
        storage_root: where outputs are stored (default: the profile's, else
            `$PYSETL_DAGSTER_STORAGE`, else `$DAGSTER_HOME/pysetl_storage`).
        schedules: cron schedules of the whole pipeline, or of its latest partition.
        sensors: `new_files`, `upstream` and `failure` sensors.
        translation: asset attributes (description, tags, kinds, owners, metadata) for every
            Factory and per Factory, rendered per Factory as dagster-dbt's `translation`.
        setup: `module:function`s called with the built `PySetlPipelineDefinitions`, for
            what YAML cannot say (a Python failure hook, a custom sensor).
    """

    pipeline: str
    params: dict[str, Any] = field(default_factory=dict)
    pipeline_params: dict[str, str] = field(default_factory=dict)
    instance: str | None = None
    name: str | None = None
    key_prefix: str | list[str] | None = None
    group: str | None = None
    factory_config: dict[str, dict[str, Any]] = field(default_factory=dict)
    stage_job: bool | None = None
    profile: str | None = None
    profile_name: str | None = None
    storage_root: str | None = None
    schedules: list[ScheduleModel] = field(default_factory=list)
    sensors: list[SensorModel] = field(default_factory=list)
    translation: Annotated[Translation | None, _translation_resolver()] = None
    setup: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, attributes: BaseModel | None, context: ComponentLoadContext) -> Any:
        """Resolve the attributes and remember the `defs.yaml` folder (errors name the file;
        `.module:attribute` references resolve beside it)."""
        component = super().load(attributes, context)
        folder = context.path if context.path.is_dir() else context.path.parent
        try:
            module: str | None = context.defs_relative_module_name(folder)
        except ValueError:  # a folder outside the defs module (tests, build_component_defs)
            module = None
        component.__dict__["_origin"] = _Origin(folder, module)
        return component

    # -- what it builds --------------------------------------------------------------------

    def build_defs(self, context: ComponentLoadContext) -> Definitions:
        """This pipeline's part of the code location's PySetl definitions.

        All PySetl components of the load are assembled once, by the first one, so shared
        assets, inputs and resources are single objects that `Definitions.merge` keeps once.
        """
        if "_origin" not in self.__dict__:
            self.__dict__["_origin"] = _Origin(context.path, None)
        try:
            components = context.component_tree.get_all_components(PySetlPipelineComponent)
        except Exception:  # a tree that cannot list its components: assemble this one alone
            components = [self]
        if not any(c is self for c in components):
            components = [self]
        leader = components[0]
        assembly = leader.__dict__.get("_assembly")
        if assembly is None:
            assembly = _Assembly.build(components)
            leader.__dict__["_assembly"] = assembly
        return assembly.definitions_for(self, leader=self is leader)

    @property
    def origin(self) -> "_Origin":
        """Where this component was declared."""
        origin = self.__dict__.get("_origin")
        return origin if isinstance(origin, _Origin) else _Origin(Path.cwd(), None)

    @property
    def pipeline_name(self) -> str | None:
        """The pipeline's name as known before building: `name`, else the template instance's,
        else this folder's (snake_case)."""
        if self.name:
            return self.name
        if self.instance:
            return None  # <template name>_<instance>: known once the template is loaded
        return snake_case(self.origin.folder.name) or None

    def where(self, key: str) -> str:
        """`<file>, attributes.<key>`: the place an error points to."""
        return f"{self.origin.file}, attributes.{key}"

    def load_reference(self, reference: str, key: str) -> Any:
        """The object a `module:attribute` reference names (`.module`: beside this file)."""
        module_name, sep, attribute = reference.partition(":")
        if not sep or not module_name or not attribute:
            raise PySetlDefinitionError(
                f"{self.where(key)}: {reference!r} is not `module:attribute` "
                "(e.g. `my_project.pipeline:build_pipeline`, or `.pipeline:build_pipeline` "
                "for a pipeline.py beside this defs.yaml)."
            )
        if module_name.startswith("."):
            if self.origin.module is None:
                raise PySetlDefinitionError(
                    f"{self.where(key)}: the relative reference {reference!r} needs the "
                    "component to live in the project's defs folder; use an absolute module."
                )
            module_name = self.origin.module + module_name
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise PySetlDefinitionError(
                f"{self.where(key)}: cannot import module {module_name!r} ({exc}). Check the "
                "name and that the project is installed or on PYTHONPATH."
            ) from exc
        value: Any = module
        for part in attribute.split("."):
            if not hasattr(value, part):
                raise PySetlDefinitionError(
                    f"{self.where(key)}: module {module_name!r} has no attribute {attribute!r}."
                )
            value = getattr(value, part)
        return value

    def build_pipeline(
        self, upstream: dict[str, PySetlPipelineDefinitions]
    ) -> PySetlPipelineDefinitions:
        """Build this component's pipeline; `upstream` holds the pipelines it reads (by name)."""
        source = self.load_reference(self.pipeline, "pipeline")
        kwargs = dict(self.params)
        for param, other in self.pipeline_params.items():
            if other not in upstream:
                raise PySetlDefinitionError(
                    f"{self.where('pipeline_params')}: {param}: no PySetl pipeline component "
                    f"named {other!r} in this project. Known: {sorted(upstream) or 'none'}."
                )
            kwargs[param] = upstream[other]
        translator = ComponentTranslator(
            key_prefix=self.key_prefix
            or (self.instance if isinstance(source, PySetlTemplate) else None),
            group=self.group,
            translation=self.translation,
        )
        name: str | None
        if isinstance(source, PySetlTemplate):
            if not self.instance:
                raise PySetlDefinitionError(
                    f"{self.where('pipeline')}: {self.pipeline!r} is a template: add "
                    "`instance: <key>` (e.g. `instance: europe`)."
                )
            built: Any = source.build(**kwargs)
            name = self.name or f"{source.name}_{self.instance}"
        elif isinstance(source, (Pipeline, PySetlPipelineDefinitions)):
            if kwargs:
                raise PySetlDefinitionError(
                    f"{self.where('params')}: {self.pipeline!r} is not a function: it takes "
                    "no parameters. Remove `params` / `pipeline_params`."
                )
            built, name = source, self.pipeline_name
        elif callable(source):
            try:
                inspect.signature(source).bind(**kwargs)
            except TypeError as exc:
                raise PySetlDefinitionError(
                    f"{self.where('params')}: {self.pipeline!r} does not accept these "
                    f"parameters ({exc}). Its signature: {inspect.signature(source)}."
                ) from exc
            built, name = source(**kwargs), self.pipeline_name
        else:
            built, name = source, self.pipeline_name
        result = self._definitions_of(built, name, translator)
        for reference in self.setup:
            hook = self.load_reference(reference, "setup")
            if not callable(hook):
                raise PySetlDefinitionError(
                    f"{self.where('setup')}: {reference!r} is not callable."
                )
            hook(result)
        self._add_automation(result)
        return result

    def _definitions_of(
        self, built: Any, name: str | None, translator: ComponentTranslator
    ) -> PySetlPipelineDefinitions:
        """`pysetl_pipeline` of what the reference gave (or it, when it is built already)."""
        if isinstance(built, PySetlPipelineDefinitions):
            given = [
                key
                for key in ("key_prefix", "group", "translation", "factory_config", "stage_job")
                if getattr(self, key) not in (None, {}, [])
            ]
            if given:
                raise PySetlDefinitionError(
                    f"{self.where(given[0])}: {self.pipeline!r} returns a pipeline that is "
                    "already translated (PySetlPipelineDefinitions), so "
                    f"{', '.join(given)} cannot apply. Point `pipeline` at a function returning "
                    "the PySetl Pipeline instead."
                )
            if self.name and self.name != built.name:
                raise PySetlDefinitionError(
                    f"{self.where('name')}: {self.pipeline!r} builds pipeline {built.name!r}, "
                    f"not {self.name!r}."
                )
            return built
        if not isinstance(built, Pipeline) and not _is_factory_list(built):
            raise PySetlDefinitionError(
                f"{self.where('pipeline')}: {self.pipeline!r} gave {type(built).__name__}, "
                "not a pysetl.workflow.Pipeline (or a function returning one)."
            )
        if not name:
            raise PySetlDefinitionError(f"{self.where('name')}: give the pipeline a `name`.")
        if snake_case(name) != name:
            raise PySetlDefinitionError(
                f"{self.where('name')}: {name!r} must be snake_case (e.g. {snake_case(name)!r}): "
                "it names the asset group and the jobs."
            )
        return pysetl_pipeline(
            built,
            name=name,
            translator=translator,
            factory_config=self._factory_config(built) or None,
            stage_job=self.stage_job,
        )

    def _factory_config(self, built: Any) -> dict[type[Factory[Any]], dict[str, Any]]:
        """`factory_config` keyed by the Factory classes of the pipeline."""
        if not self.factory_config:
            return {}
        factories: Iterable[Any] = (
            [f for stage in built.stages for f in stage.factories]
            if isinstance(built, Pipeline)
            else built
        )
        by_name = {type(f).__name__: type(f) for f in factories}
        by_name.update({snake_case(n): t for n, t in list(by_name.items())})
        config: dict[type[Factory[Any]], dict[str, Any]] = {}
        for name, values in self.factory_config.items():
            if name not in by_name:
                raise PySetlDefinitionError(
                    f"{self.where('factory_config')}: no Factory {name!r} in the pipeline. "
                    f"Its Factories: {sorted(n for n in by_name if not n.islower())}."
                )
            config[by_name[name]] = dict(values)
        return config

    def _add_automation(self, result: PySetlPipelineDefinitions) -> None:
        """The YAML schedules and sensors, declared on the built pipeline."""
        for schedule in self.schedules:
            if schedule.latest_partition:
                extra: dict[str, Any] = {"name": schedule.name} if schedule.name else {}
                result.latest_partition_schedule(
                    hour_of_day=schedule.hour_of_day,
                    minute_of_hour=schedule.minute_of_hour,
                    **extra,
                )
            else:
                assert schedule.cron is not None
                result.schedule(
                    schedule.cron,
                    timezone=schedule.timezone,
                    enabled=schedule.enabled,
                    name=schedule.name,
                )
        for sensor in self.sensors:
            status = DefaultSensorStatus.RUNNING if sensor.running else DefaultSensorStatus.STOPPED
            common: dict[str, Any] = {
                "minimum_interval_seconds": sensor.minimum_interval_seconds,
                "default_status": status,
            }
            if sensor.name:
                common["name"] = sensor.name
            if sensor.kind == "new_files":
                assert sensor.folder is not None
                folder = Path(sensor.folder).expanduser()
                if not folder.is_absolute():
                    folder = self.origin.folder / folder
                result.on_new_files(
                    folder,
                    factories=sensor.factories,
                    pattern=sensor.pattern,
                    settle_seconds=sensor.settle_seconds,
                    **common,
                )
            elif sensor.kind == "upstream":
                result.on_upstream(**common)
            else:
                hook: Callable[..., Any] | None = (
                    self.load_reference(sensor.hook, "sensors") if sensor.hook else None
                )
                url: str | EnvVar | None = (
                    EnvVar(sensor.webhook_url_env) if sensor.webhook_url_env else sensor.webhook_url
                )
                result.on_failure(hook=hook, webhook_url=url, **common)

    def load_settings(self) -> tuple[Profile | None, str | None]:
        """The profile and storage root this component asks for (None: not set here)."""
        profile = None
        if self.profile:
            path = Path(self.profile).expanduser()
            if not path.is_absolute():
                path = self.origin.folder / path
            profile = load_profile(path, self.profile_name)
        return profile, self.storage_root


PySetlPipelineComponent.__module__ = "pysetl_dagster"  # its public name, as dg shows it


def _is_factory_list(value: Any) -> bool:
    """Whether a reference gave Factories without Stages (`pysetl_pipeline` accepts those)."""
    return isinstance(value, (list, tuple)) and all(isinstance(f, Factory) for f in value)


@dataclass
class _Assembly:
    """Every PySetl component of one load, built together as one `build_definitions` call."""

    definitions: Definitions
    pipelines: dict[int, PySetlPipelineDefinitions]

    @classmethod
    def build(cls, components: Sequence["PySetlPipelineComponent"]) -> "_Assembly":
        """Build each component's pipeline (those it reads first), then the definitions."""
        by_name: dict[str, PySetlPipelineComponent] = {}
        for component in components:
            name = component.pipeline_name
            if name is None:
                continue
            if name in by_name:
                raise PySetlDefinitionError(
                    f"{component.where('name')}: pipeline name {name!r} is also used by "
                    f"{by_name[name].origin.file}. Give each component its own `name`."
                )
            by_name[name] = component
        built: dict[int, PySetlPipelineDefinitions] = {}
        visiting: list[PySetlPipelineComponent] = []

        def build_one(component: PySetlPipelineComponent) -> PySetlPipelineDefinitions:
            if id(component) in built:
                return built[id(component)]
            if component in visiting:
                cycle = " -> ".join(str(c.origin.file) for c in [*visiting, component])
                raise PySetlDefinitionError(f"pipeline_params form a cycle: {cycle}")
            visiting.append(component)
            upstream = {
                other: build_one(by_name[other])
                for other in component.pipeline_params.values()
                if other in by_name
            }
            visiting.pop()
            built[id(component)] = component.build_pipeline(upstream)
            return built[id(component)]

        for component in components:
            build_one(component)
        profile, storage = cls._settings(components)
        try:
            definitions = build_definitions(
                *(built[id(c)] for c in components), profile=profile, storage_path=storage
            )
        except PySetlDefinitionError as exc:  # say which defs.yaml files are involved
            named = [str(c.origin.file) for c in components if f"{built[id(c)].name!r}" in str(exc)]
            where = ", ".join(named or [str(c.origin.file) for c in components])
            raise PySetlDefinitionError(f"{exc} (components: {where})") from exc
        return cls(definitions, built)

    @staticmethod
    def _settings(
        components: Sequence["PySetlPipelineComponent"],
    ) -> tuple[Profile | None, str | None]:
        """The one profile and storage root of the code location: components that set them
        must agree, since the Spark session and storage are shared."""
        profile: Profile | None = None
        storage: str | None = None
        profile_from = storage_from = None
        for component in components:
            own_profile, own_storage = component.load_settings()
            if own_profile is not None:
                if profile is not None and own_profile != profile:
                    raise PySetlDefinitionError(
                        f"{component.where('profile')}: a different profile than "
                        f"{profile_from}: one code location has one Spark session and storage. "
                        "Set `profile` in one component, or the same in each."
                    )
                profile, profile_from = own_profile, component.origin.file
            if own_storage is not None:
                if storage is not None and own_storage != storage:
                    raise PySetlDefinitionError(
                        f"{component.where('storage_root')}: {own_storage!r} differs from "
                        f"{storage!r} ({storage_from}): one code location has one storage root."
                    )
                storage, storage_from = own_storage, component.origin.file
        return profile, storage

    def definitions_for(self, component: "PySetlPipelineComponent", *, leader: bool) -> Definitions:
        """The part of the assembled definitions that is this component's pipeline's.

        Each definition goes to exactly one component: an asset definition to the first
        component (in load order) whose pipeline has one of its keys (an asset two pipelines
        share, the one observable-inputs definition), a job, schedule or sensor to the pipeline
        that declared it; the leader also gets what belongs to no pipeline (a profile's metric
        sensors). Resources are the same objects in every part. Merging the parts gives back
        the assembled definitions, even after dagster post-processes each part."""
        mine = self.pipelines[id(component)]
        defs = self.definitions
        order = list(self.pipelines.values())

        def keys_of(asset: Any) -> set[Any]:
            return {asset.key} if isinstance(asset, AssetSpec) else set(asset.keys)

        def owner_of_asset(asset: Any) -> PySetlPipelineDefinitions | None:
            keys = keys_of(asset)
            for pipeline in order:
                if any(keys_of(own) & keys for own in pipeline.assets):
                    return pipeline
            return None

        def owner_by_name(name: str, kind: str) -> PySetlPipelineDefinitions | None:
            for pipeline in order:
                names = {
                    "job": [j.name for j in pipeline.jobs],
                    "schedule": [s.name for s in pipeline.schedules],
                    "sensor": [s.name for s in pipeline.sensors],
                }[kind]
                if name in names:
                    return pipeline
            return None

        def is_mine(owner: PySetlPipelineDefinitions | None) -> bool:
            return owner is mine or (owner is None and leader)

        return Definitions(
            assets=[a for a in defs.assets or [] if is_mine(owner_of_asset(a))],
            jobs=[j for j in defs.jobs or [] if is_mine(owner_by_name(j.name, "job"))],
            schedules=[
                s for s in defs.schedules or [] if is_mine(owner_by_name(s.name, "schedule"))
            ],
            sensors=[s for s in defs.sensors or [] if is_mine(owner_by_name(s.name, "sensor"))],
            resources=defs.resources,
            executor=defs.executor,
        )
