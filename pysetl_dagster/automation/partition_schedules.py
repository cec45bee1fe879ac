"""Schedules of time-partitioned jobs: `latest_partition_schedule` runs the job once per
time partition, on the latest complete one, requesting `RunRequest(partition_key=...)`
itself (Dagster's own builder calls a deprecated API on every tick).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dagster import (
    DefaultScheduleStatus,
    PartitionedConfig,
    PartitionsDefinition,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    TimeWindowPartitionsDefinition,
)
from dagster._core.definitions.partitions.context import partition_loading_context
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

from pysetl_dagster.errors import PySetlDefinitionError


def latest_partition_schedule(
    job: UnresolvedAssetJobDefinition,
    *,
    name: str | None = None,
    hour_of_day: int = 0,
    minute_of_hour: int = 0,
    partitions_def: PartitionsDefinition | None = None,
    day_of_week: int | None = None,
    day_of_month: int | None = None,
    default_status: DefaultScheduleStatus = DefaultScheduleStatus.STOPPED,
    tags: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> ScheduleDefinition:
    """A schedule that runs the job, once per time partition, on the latest complete one.

    Only time partitions have a "latest"; a static-partitioned job gets a load-time error
    saying to backfill it or to schedule it with a cron and a fixed partition instead.
    `partitions_def` is the partitions of the job's assets: an asset job infers them from its
    assets only when `Definitions` resolve it (Dagster deprecated `define_asset_job(
    partitions_def=...)`), so the caller who knows them passes them.

    What `build_schedule_from_partitioned_job` builds for a time-partitioned job (cron, time
    zone, run key, run config and tags per partition, excluded windows skipped), with the
    run request built directly: Dagster's own schedule calls the deprecated
    `run_request_for_partition`, removed in Dagster 2.0. `tags` are the runs' tags; the other
    keyword arguments go to the `ScheduleDefinition` (`description`, `metadata`, ...).
    """
    partitions_def = partitions_def or job.partitions_def
    if not isinstance(partitions_def, TimeWindowPartitionsDefinition):
        raise PySetlDefinitionError(
            f"Job {job.name!r} has no time partitions ({partitions_def!r}), so it has no "
            "latest partition to schedule. Declare `partitions = daily(...)` on its Factories, "
            "or launch its static partitions from the UI (Materialize > backfill)."
        )
    time_def = partitions_def
    config = PartitionedConfig.from_flexible_config(job.config, time_def)

    def latest(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
        # None (an evaluation outside a tick): now, as in Dagster's partitioned schedules
        with partition_loading_context(effective_dt=context._scheduled_execution_time):
            key = time_def.get_last_partition_key()
        if key is None:
            return SkipReason("The job's PartitionsDefinition has no partitions")
        return RunRequest(
            run_key=key,
            partition_key=key,
            run_config=config.get_run_config_for_partition_key(key),
            tags={**(tags or {}), **config.get_tags_for_partition_key(key)},
        )

    should_execute: Callable[[ScheduleEvaluationContext], bool] | None = None
    if time_def.exclusions:

        def not_excluded(context: ScheduleEvaluationContext) -> bool:
            with partition_loading_context(effective_dt=context.scheduled_execution_time):
                window = time_def.get_last_partition_window_ignoring_exclusions()
                return window is None or not time_def.is_window_start_excluded(window.start)

        should_execute = not_excluded

    return ScheduleDefinition(
        name=name or f"{job.name}_schedule",
        cron_schedule=time_def.get_cron_schedule(
            minute_of_hour, hour_of_day, day_of_week, day_of_month
        ),
        execution_timezone=time_def.timezone,
        job=job,
        execution_fn=latest,
        should_execute=should_execute,
        default_status=default_status,
        **kwargs,
    )
