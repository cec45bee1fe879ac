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

from typing import Any

from dagster import (
    PartitionsDefinition,
    ScheduleDefinition,
    TimeWindowPartitionsDefinition,
    build_schedule_from_partitioned_job,
)
from dagster._core.definitions.partitions.partitioned_schedule import (
    UnresolvedPartitionedAssetScheduleDefinition,
)
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
    **kwargs: Any,
) -> ScheduleDefinition | UnresolvedPartitionedAssetScheduleDefinition:
    """A schedule that runs the job, once per time partition, on the latest complete one.

    Only time partitions have a "latest"; a static-partitioned job gets a load-time error
    saying to backfill it or to schedule it with a cron and a fixed partition instead.
    `partitions_def` is the partitions of the job's assets: an asset job infers them from its
    assets only when `Definitions` resolve it (Dagster deprecated `define_asset_job(
    partitions_def=...)`), so the caller who knows them passes them for the check.
    """
    partitions_def = partitions_def or job.partitions_def
    if not isinstance(partitions_def, TimeWindowPartitionsDefinition):
        raise PySetlDefinitionError(
            f"Job {job.name!r} has no time partitions ({partitions_def!r}), so it has no "
            "latest partition to schedule. Declare `partitions = daily(...)` on its Factories, "
            "or launch its static partitions from the UI (Materialize > backfill)."
        )
    return build_schedule_from_partitioned_job(
        job, name=name, hour_of_day=hour_of_day, minute_of_hour=minute_of_hour, **kwargs
    )
