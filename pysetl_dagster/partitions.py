"""Partitioned Factories: declared in PySetl words, run by Dagster one partition at a time.

    class DailyOrders(Factory[DataSet[Order]]):
        partitions = daily("2024-01-01")          # or static(["eu", "us"]), or any
                                                  # dagster PartitionsDefinition
        def read(self):
            day = self.partition_key                 # "2024-01-05", set for every run

The translator puts the declaration on the Factory's AssetSpec (`get_partitions_def`), so the UI
shows partitions and backfills; the step hands the run's partition key to the Factory's private
copy; the storage keeps one folder per partition. A partitioned consumer reads the same
partition of a partitioned upstream (Dagster's default mapping); an unpartitioned consumer reads
every stored partition, as one lazy DataFrame (no rows reach the driver).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from dagster import (
    AssetKey,
    DailyPartitionsDefinition,
    PartitionsDefinition,
    ScheduleDefinition,
    StaticPartitionsDefinition,
    TimeWindowPartitionsDefinition,
    build_schedule_from_partitioned_job,
)
from dagster._core.definitions.partitions.partitioned_schedule import (
    UnresolvedPartitionedAssetScheduleDefinition,
)
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

from .errors import PySetlDefinitionError

if TYPE_CHECKING:
    from .specs import TranslatedPipeline

__all__ = [
    "daily",
    "declared_partitions",
    "latest_partition_schedule",
    "partitions_label",
    "static",
]

PARTITIONS_ATTRIBUTE = "partitions"


def daily(
    start: str | date | datetime,
    *,
    end: str | date | datetime | None = None,
    timezone: str | None = None,
    end_offset: int = 0,
) -> DailyPartitionsDefinition:
    """One partition per day from `start` (`"2024-01-01"`); keys look like `"2024-01-05"`.

    `end_offset=1` also offers today's (still running) day; the default stops at yesterday.
    """
    return DailyPartitionsDefinition(
        start_date=_day(start),
        end_date=_day(end) if end is not None else None,
        timezone=timezone,
        end_offset=end_offset,
    )


def _day(value: str | date | datetime) -> str:
    return value.strftime("%Y-%m-%d") if isinstance(value, date | datetime) else value


def static(keys: Iterable[str]) -> StaticPartitionsDefinition:
    """A fixed set of partitions, e.g. `static(["eu", "us"])`."""
    keys = list(keys)
    if not keys or len(set(keys)) != len(keys):
        raise PySetlDefinitionError(
            f"static({keys!r}): give a non-empty list of distinct partition keys, e.g. "
            "static(['eu', 'us'])."
        )
    return StaticPartitionsDefinition(keys)


def declared_partitions(factory_type: type) -> PartitionsDefinition | None:
    """The Factory's `partitions` class attribute, checked; None when it declares none."""
    declared = getattr(factory_type, PARTITIONS_ATTRIBUTE, None)
    if declared is None or (isinstance(declared, int) and not isinstance(declared, bool)):
        return None  # an int is a Spark partition count some Factories keep under this name
    if isinstance(declared, PartitionsDefinition):
        return declared
    if isinstance(declared, Sequence) and not isinstance(declared, str):
        return static([str(k) for k in declared])
    raise PySetlDefinitionError(
        f"Factory {factory_type.__name__}: `partitions = {declared!r}` is not a partitions "
        "declaration. Use `partitions = daily('2024-01-01')`, `static(['eu', 'us'])` (from "
        "pysetl_dagster) or a dagster PartitionsDefinition."
    )


def partitions_label(partitions_def: PartitionsDefinition) -> str:
    """A short name for job names: `daily`, `hourly`, `static`..."""
    if isinstance(partitions_def, TimeWindowPartitionsDefinition):
        cron = partitions_def.cron_schedule
        return {"0 0 * * *": "daily", "0 * * * *": "hourly"}.get(cron, "time")
    if isinstance(partitions_def, StaticPartitionsDefinition):
        return "static"
    return type(partitions_def).__name__.removesuffix("PartitionsDefinition").lower() or "parts"


def latest_partition_schedule(
    job: UnresolvedAssetJobDefinition,
    *,
    name: str | None = None,
    hour_of_day: int = 0,
    minute_of_hour: int = 0,
    **kwargs: Any,
) -> ScheduleDefinition | UnresolvedPartitionedAssetScheduleDefinition:
    """A schedule that runs the job, once per time partition, on the latest complete one.

    Only time partitions have a "latest"; a static-partitioned job gets a load-time error
    saying to backfill it or to schedule it with a cron and a fixed partition instead.
    """
    partitions_def = job.partitions_def
    if not isinstance(partitions_def, TimeWindowPartitionsDefinition):
        raise PySetlDefinitionError(
            f"Job {job.name!r} has no time partitions ({partitions_def!r}), so it has no "
            "latest partition to schedule. Declare `partitions = daily(...)` on its Factories, "
            "or launch its static partitions from the UI (Materialize > backfill)."
        )
    return build_schedule_from_partitioned_job(
        job, name=name, hour_of_day=hour_of_day, minute_of_hour=minute_of_hour, **kwargs
    )


def partition_groups(
    translated: TranslatedPipeline,
) -> list[tuple[PartitionsDefinition | None, list[AssetKey]]]:
    """The pipeline's Factory asset keys split into jobs Dagster accepts: the first job holds
    the unpartitioned Factories and those of the first partitions definition (in run order);
    each further partitions definition gets a job of its own."""
    by_def: dict[PartitionsDefinition | None, list[AssetKey]] = {}
    for spec in translated.factory_specs.values():
        by_def.setdefault(spec.partitions_def, []).append(spec.key)
    unpartitioned = by_def.pop(None, [])
    defs = list(by_def.items())
    if not defs:
        return [(None, unpartitioned)]
    first_def, first_keys = defs[0]
    return [(first_def, [*unpartitioned, *first_keys]), *defs[1:]]


def partition_job_names(
    name: str, groups: Sequence[tuple[PartitionsDefinition | None, Sequence[AssetKey]]]
) -> list[str]:
    """`<name>_assets` for the first job, `<name>_<daily|static|...>_assets` for the others."""
    names = [f"{name}_assets"]
    for partitions_def, _ in groups[1:]:
        assert partitions_def is not None
        base = f"{name}_{partitions_label(partitions_def)}"
        candidate, i = f"{base}_assets", 2
        while candidate in names:
            candidate, i = f"{base}_{i}_assets", i + 1
        names.append(candidate)
    return names


def stage_job_partitions(
    name: str,
    translated: TranslatedPipeline,
    groups: Sequence[tuple[PartitionsDefinition | None, Sequence[AssetKey]]],
    *,
    wanted: bool | None,
) -> PartitionsDefinition | bool | None:
    """The Stage job's partitions definition: None (unpartitioned pipeline), the one definition
    every Factory shares, or False when no Stage job can run this pipeline (Factories with
    different partitions, or partitioned and unpartitioned ones mixed: a Stage run has one
    partition key for all its ops). With `wanted=True` that is a load-time error."""
    defs = {spec.partitions_def for spec in translated.factory_specs.values()}
    if len(defs) == 1:
        return next(iter(defs))
    if wanted:
        partitioned = sorted(
            n.name for n, s in translated.factory_specs.items() if s.partitions_def is not None
        )
        jobs = ", ".join(partition_job_names(name, groups))
        raise PySetlDefinitionError(
            f"Pipeline {name!r} cannot have a Stage job: its Factories {partitioned} are "
            "partitioned and the others differ (a Stage run has one partition key for every "
            f"Factory). Use its asset jobs instead ({jobs}) and backfill partitions from the "
            "UI or `dagster job backfill`; or pass stage_job=False."
        )
    return False
