"""`build_definitions`: one or many pipelines -> `dagster.Definitions`, with default Spark
and storage resources (or a profile's). Assets shared by pipelines appear once (by
signature); two different definitions of one key are an error naming both pipelines.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dagster import (
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    Definitions,
    JobDefinition,
    ScheduleDefinition,
    SensorDefinition,
)
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

from pysetl_dagster.automation.input_observation import build_input_observation
from pysetl_dagster.automation.partition_schedules import latest_partition_schedule
from pysetl_dagster.automation.schedules import (
    profiled_schedule,
)
from pysetl_dagster.defs.executor import pysetl_executor
from pysetl_dagster.defs.pipeline import AnySchedule, PySetlPipelineDefinitions
from pysetl_dagster.errors import PySetlDefinitionError
from pysetl_dagster.spark.resource import PySparkSessionResource
from pysetl_dagster.storage.io_manager import SparkParquetIOManager
from pysetl_dagster.translation.links import link_of, missing_links

if TYPE_CHECKING:  # a profile is loaded (pydantic models, yaml) only by who uses one
    from pysetl_dagster.defs.profiles import Profile


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


def _same_definition(
    first: PySetlPipelineDefinitions, second: PySetlPipelineDefinitions, key: AssetKey
) -> bool:
    """Whether two pipelines define an asset key the same way (the same Factory, inputs,
    checks and condition; or the same external input): then it is one asset, the first's."""
    if key in first.signatures or key in second.signatures:
        return first.signatures.get(key) == second.signatures.get(key)
    specs = [
        spec
        for p in (first, second)
        for spec in p.translated.external_specs.values()
        if spec.key == key
    ]
    return len(specs) == 2 and specs[0].metadata == specs[1].metadata


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

    Args:
        pipelines: what `pysetl_pipeline` (or a template instance) returned.
        resources: resources added to (or replacing) the defaults `pyspark` and `io_manager`.
        storage_path: the storage root (default: the profile's, else
            `$PYSETL_DAGSTER_STORAGE`, else `$DAGSTER_HOME/pysetl_storage`).
        spark_config: Spark properties of the default `pyspark` resource.
        schedules: more schedules, besides the pipelines' own.
        sensors: more sensors, besides the pipelines' own.
        assets: more assets (e.g. other integrations') in the same code location.
        jobs: more jobs.
        profile: a loaded profile (`load_profile`): Spark, storage, schedules, resources.
    """
    by_name: dict[str, PySetlPipelineDefinitions] = {}
    for p in pipelines:
        seen = by_name.setdefault(p.name, p)
        if seen is not p and seen.signatures != p.signatures:
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
                if other is asset or _same_definition(by_name[other_pipeline], p, key):
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
    if profile is not None:  # what the branching sensors decide config flags with
        for p in pipelines:
            p.profile_flags = profile.flag_values()
    # A pipeline built with another io_manager_key gets the same storage under that key
    # (unless the caller gave one): every key the assets require is provided.
    for storage_key in sorted({p.io_manager_key for p in pipelines} - set(all_resources)):
        all_resources[storage_key] = all_resources["io_manager"]
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
        executor=pysetl_executor,  # also "Materialize all" (Dagster's implicit asset job)
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
