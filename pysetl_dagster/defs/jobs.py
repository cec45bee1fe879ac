"""How a pipeline's Factories split into jobs Dagster accepts: one asset job per partitions
definition (`<name>_assets`, `<name>_<daily|static|...>_assets`), and whether a Stage job can
run them (one partition key for every op of a Stage run).
"""

from __future__ import annotations

from collections.abc import Sequence

from dagster import (
    AssetKey,
    PartitionsDefinition,
)

from pysetl_dagster.errors import PySetlDefinitionError
from pysetl_dagster.translation.partitions import partitions_label
from pysetl_dagster.translation.specs import TranslatedPipeline


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
