"""Cron schedules declared next to the pipeline, and declarative automation per Factory.

    retail.schedule(cron="0 6 * * 1-5", timezone="Europe/Paris", enabled=True)
    pysetl_pipeline(p, name="returns", automation_condition={ReturnRate: eager()})

A schedule runs the pipeline's asset job. `enabled` sets its default status; with a profile
(`build_definitions(profile=...)`) an explicit `enabled` wins and `None` lets the profile's
`schedules.enabled` decide (the profile's `schedules.cron`, when set, replaces the cron).
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dagster import (
    AutomationCondition,
    DagsterInvalidDefinitionError,
    DefaultScheduleStatus,
    ScheduleDefinition,
)

from pysetl_dagster.automation.target import AutomationTarget
from pysetl_dagster.errors import PySetlDefinitionError
from pysetl_dagster.metadata import MetadataKey
from pysetl_dagster.translation.naming import snake_case
from pysetl_dagster.translation.specs import TranslatedPipeline

if TYPE_CHECKING:  # a profile is loaded (pydantic models, yaml) only by who uses one
    from pysetl_dagster.defs.profiles import Profile

ENABLED_METADATA = MetadataKey.ENABLED
"""Schedule metadata: what the declaration said (`true`, `false`, or `profile`)."""


def pipeline_schedule(
    pipeline: AutomationTarget,
    *,
    cron: str,
    name: str | None = None,
    timezone: str | None = None,
    enabled: bool | None = None,
    description: str | None = None,
    **kwargs: Any,
) -> ScheduleDefinition:
    """A schedule materializing the whole pipeline; bad cron or timezone fail at load time."""
    schedule_name = name or f"{snake_case(pipeline.name)}_schedule"
    timezone = timezone or kwargs.pop("execution_timezone", None)  # Dagster's own spelling
    if "default_status" in kwargs:
        enabled = kwargs.pop("default_status") == DefaultScheduleStatus.RUNNING
    if timezone is not None:
        try:
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise PySetlDefinitionError(
                f"Schedule {schedule_name!r} of pipeline {pipeline.name!r}: unknown timezone "
                f"{timezone!r}. Use an IANA name such as 'Europe/Paris' or 'UTC'."
            ) from exc
    try:
        return ScheduleDefinition(
            name=schedule_name,
            job=pipeline.asset_job,
            cron_schedule=cron,
            execution_timezone=timezone,
            description=description or f"Materializes pipeline {pipeline.name!r} ({cron}).",
            default_status=(
                DefaultScheduleStatus.RUNNING if enabled else DefaultScheduleStatus.STOPPED
            ),
            metadata={ENABLED_METADATA: "profile" if enabled is None else str(enabled).lower()},
            **kwargs,
        )
    except DagsterInvalidDefinitionError as exc:
        raise PySetlDefinitionError(
            f"Schedule {schedule_name!r} of pipeline {pipeline.name!r}: {exc}. A cron string "
            "has five fields, e.g. '0 2 * * *' (every day at 02:00)."
        ) from exc


def profiled_schedule(
    schedule: ScheduleDefinition, pipeline: AutomationTarget, profile: Profile
) -> ScheduleDefinition:
    """The schedule as the profile deploys it (status and cron), keeping its declaration."""
    declared = schedule.metadata.get(ENABLED_METADATA)
    value = getattr(declared, "value", declared)
    if value in ("true", "false"):
        status = DefaultScheduleStatus.RUNNING if value == "true" else DefaultScheduleStatus.STOPPED
    else:
        status = profile.schedule_status
    return ScheduleDefinition(
        name=schedule.name,
        job=pipeline.asset_job,
        cron_schedule=profile.schedules.cron or schedule.cron_schedule,
        execution_timezone=schedule.execution_timezone,
        description=schedule.description,
        default_status=status,
        metadata=schedule.metadata,
    )


# -- declarative automation ----------------------------------------------------------------


AutomationDeclaration = AutomationCondition[Any] | Mapping[Any, AutomationCondition[Any]] | None


def apply_automation(translated: TranslatedPipeline, declared: AutomationDeclaration) -> None:
    """Put the declared `AutomationCondition`s on the Factories' asset specs (before the assets
    are built). `declared` is one condition for every Factory, or Factory (class or name) ->
    condition. A Factory class may also declare `automation_condition = ...` itself; the
    pipeline's declaration wins. Unknown Factories are a load-time error naming them."""
    graph = translated.graph
    per_node: dict[Any, AutomationCondition[Any]] = {}
    for node in graph.nodes:
        own = translated.declarations[node].automation_condition
        if own is not None:
            per_node[node] = own
    if isinstance(declared, AutomationCondition):
        per_node.update({node: declared for node in graph.nodes})
    elif declared:
        for ref, condition in declared.items():
            label = getattr(ref, "__name__", str(ref))
            matches = translated.find_factories([ref], "automation_condition")
            if not isinstance(condition, AutomationCondition):
                raise PySetlDefinitionError(
                    f"automation_condition of pipeline {graph.name!r} for Factory {label!r} "
                    f"is {condition!r}; use an AutomationCondition, e.g. "
                    "AutomationCondition.eager()."
                )
            per_node.update({n: condition for n in matches})
    for node, condition in per_node.items():
        spec = translated.factory_specs[node]
        translated.factory_specs[node] = spec.replace_attributes(automation_condition=condition)
