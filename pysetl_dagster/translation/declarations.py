"""The Factory attributes pysetl-dagster understands, read once into one record.

A Factory declares how it runs under Dagster with class (or instance) attributes; this is
the only place that reads them. `translate()` builds one `FactoryDeclarations` per Factory
and everything downstream (the translator's defaults, asset and op building, the cache,
automation, templates) reads the record, so a declaration's meaning and its error live in
one place. README: "Factory declarations" lists them.

| attribute | type | read by |
|---|---|---|
| `validation` | `Validation` or a pandera/typedspark schema | asset checks |
| `partitions` | `daily(...)`, `static([...])`, a `PartitionsDefinition` | asset partitions |
| `condition` | `when_config(...)`, `when_data(...)`, combined with `&` `|` `~` | the step |
| `cache` | `bool` | the cache |
| `cache_ttl` | `timedelta` or seconds | the cache |
| `automation_condition` | `dagster.AutomationCondition` | declarative automation |
| `Config` | a nested `dagster.Config` class | run config (`self.config`) |
| `variant`, `branch_*` | set by `variants(...)` / `branch(...)` | A/B and branches |
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from dagster import AutomationCondition, Config, PartitionsDefinition

from pysetl_dagster.automation.conditions import BranchFactory, Condition
from pysetl_dagster.checks.plan import Validation, as_validation
from pysetl_dagster.errors import PySetlDefinitionError
from pysetl_dagster.translation.partitions import declared_partitions


@dataclass(frozen=True)
class BranchDeclaration:
    """A `branch(...)` Factory's condition and its two alternatives."""

    choose: Condition
    then: Any
    otherwise: Any


@dataclass(frozen=True)
class FactoryDeclarations:
    """What one Factory declares for pysetl-dagster (defaults when it declares nothing)."""

    validation: Validation | None = None
    partitions: PartitionsDefinition | None = None
    condition: Condition | None = None
    cache: bool = True
    cache_ttl_seconds: float | None = None
    automation_condition: AutomationCondition[Any] | None = None
    config_class: type[Config] | None = None
    variant: str | None = None
    branch: BranchDeclaration | None = None


def read_declarations(factory: Any) -> FactoryDeclarations:
    """Read and check a Factory's declarations (instance attributes win over class ones, as
    `stage_condition` and `variants` set them on the instance)."""
    factory_type = type(factory)
    name = factory_type.__name__
    condition = getattr(factory, "condition", None)
    if condition is not None and not isinstance(condition, Condition):
        raise PySetlDefinitionError(
            f"Factory {name}: `condition = {condition!r}` is not a condition. Use "
            "when_config(...) or when_data(...) from pysetl_dagster (combined with & | ~)."
        )
    automation = getattr(factory_type, "automation_condition", None)
    branch = None
    if isinstance(factory, BranchFactory):
        branch = BranchDeclaration(
            factory.branch_choose, factory.branch_then, factory.branch_otherwise
        )
    variant = getattr(factory, "variant", None)
    return FactoryDeclarations(
        validation=as_validation(getattr(factory_type, "validation", None)),
        partitions=declared_partitions(factory_type),
        condition=condition,
        cache=bool(getattr(factory_type, "cache", True)),
        cache_ttl_seconds=_seconds(name, getattr(factory_type, "cache_ttl", None)),
        automation_condition=automation if isinstance(automation, AutomationCondition) else None,
        config_class=_config_class(factory_type),
        variant=str(variant) if variant else None,
        branch=branch,
    )


def _seconds(factory: str, ttl: Any) -> float | None:
    if ttl is None:
        return None
    if isinstance(ttl, timedelta):
        return ttl.total_seconds()
    if isinstance(ttl, int | float) and not isinstance(ttl, bool):
        return float(ttl)
    raise PySetlDefinitionError(
        f"Factory {factory}: `cache_ttl = {ttl!r}` is not a duration. Use a timedelta "
        "(`cache_ttl = timedelta(hours=6)`) or a number of seconds."
    )


def _config_class(factory_type: type) -> type[Config] | None:
    """The Factory's nested `Config` class when it is a `dagster.Config` (PySetl Factories may
    have other things called Config; those are not run config)."""
    config_class = getattr(factory_type, "Config", None)
    if isinstance(config_class, type) and issubclass(config_class, Config):
        return config_class
    return None
