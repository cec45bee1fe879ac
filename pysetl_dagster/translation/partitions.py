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
from typing import TYPE_CHECKING

from dagster import (
    DailyPartitionsDefinition,
    PartitionsDefinition,
    StaticPartitionsDefinition,
    TimeWindowPartitionsDefinition,
)

from pysetl_dagster.errors import PySetlDefinitionError

if TYPE_CHECKING:
    pass


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

    Args:
        start: the first day, `"2024-01-01"` or a date.
        end: the day after the last one (default: open ended).
        timezone: the partitions' timezone (default UTC).
        end_offset: how many partitions past the last complete day to offer.
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
