"""Checks in the step: observed while the new version is written, evaluated on the written
files, or on an in-memory value; stored with the version and reported again on reuse."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    AssetCheckResult,
    AssetKey,
    Failure,
    MetadataValue,
)
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from pysetl_dagster.checks.plan import (
    IN_MEMORY_ENGINES,
    CheckOutcome,
    CheckPlan,
    evaluate,
    evaluate_pandas,
    observed_exprs,
    unique_proofs,
)
from pysetl_dagster.errors import PySetlFactoryError
from pysetl_dagster.execution.state import StepState
from pysetl_dagster.metadata import MetadataKey
from pysetl_dagster.spark.labels import asset_scope
from pysetl_dagster.storage.io_manager import SparkParquetIOManager, StoredVersion


def write_and_audit(
    storage: SparkParquetIOManager,
    plan: CheckPlan | None,
    output: DataFrame,
    key: AssetKey,
    partition: str | None,
    *,
    run_id: str,
    recorded: list[Column] | None = None,
) -> tuple[StoredVersion, list[CheckOutcome]]:
    """Write the new version with every row-level check observed during the write, then
    evaluate the rest on the written files (never on the Factory's lineage again).
    `recorded`: more aggregates to observe in the same write (for branching sensors)."""
    spark_plan = plan if plan is not None and plan.engine == "pyspark" else None
    exprs, broken = observed_exprs(spark_plan, output) if spark_plan else ([], {})
    # before the write: the Factory's own plan, not the files read back, can prove uniqueness
    proved = unique_proofs(spark_plan, output) if spark_plan else {}
    if recorded:
        exprs = [*(exprs or [F.count(F.lit(1)).alias("__rows")]), *recorded]
    location = storage.store.asset_dir(key, partition)
    previous = storage.store.current_manifest(key, partition)
    asset = key.to_user_string()
    stored = storage.store.write_version(
        key, location, output, observe=exprs or None, run_id=run_id, label=asset
    )
    if spark_plan is None:
        return stored, []
    start = time.perf_counter()
    try:
        with asset_scope(output.sparkSession, run_id, asset, "asset checks"):
            outcomes = evaluate(
                spark_plan,
                storage.store.read_version(stored.path, stored.schema_json),
                stored.observed,
                broken=broken,
                previous_schema=schema_of(previous, "schema"),
                sample_fraction=_sample_fraction(spark_plan, storage),
                proved=proved,
            )
    except BaseException:
        storage.store.abandon(stored)  # never published: do not leave it leased
        raise
    for outcome in outcomes:
        outcome.seconds = time.perf_counter() - start
    return stored, outcomes


def audit_in_memory(plan: CheckPlan | None, output: Any) -> list[CheckOutcome]:
    """Checks on a value that is not stored by this project's storage (a pandas DataFrame, or
    another IO manager): evaluated before the value is handed over, so nothing bad is stored."""
    if plan is None:
        return []
    if plan.engine in IN_MEMORY_ENGINES:
        return evaluate_pandas(plan, output)
    if isinstance(output, DataFrame):  # one fused query: counts, cases, uniqueness
        _, broken = observed_exprs(plan, output)
        return evaluate(plan, output, {}, broken=broken, proved=unique_proofs(plan, output))
    return []


def check_stored(state: StepState) -> list[CheckOutcome]:
    """Evaluate the selected checks against the current stored version (the UI's "Execute
    checks"): one fused query reading only the checked columns (two Spark jobs with
    uniqueness), plus opaque custom checks if selected."""
    plan, storage, key, partition = state.plan, state.storage, state.key, state.partition
    assert plan is not None
    if storage is None or plan.engine != "pyspark":
        raise PySetlFactoryError(
            f"Checks of asset {key.to_user_string()} can run on their own only on a Spark output "
            "stored by SparkParquetIOManager; materialize the asset to run them."
        )
    manifest = storage.store.current_manifest(key, partition)
    if manifest is None:
        raise Failure(
            description=f"Asset {key.to_user_string()} has no stored output to check. "
            "Materialize it first."
        )
    path = storage.store.asset_dir(key, partition) / manifest["version"]
    with asset_scope(state.spark, state.run_id, state.asset, "asset checks on the stored output"):
        written = storage.store.read_version(path, manifest.get("schema"))
        _, broken = observed_exprs(plan, written)
        outcomes = evaluate(
            plan,
            written,
            {"__rows": manifest["rows"]} if manifest.get("rows") is not None else {},
            broken=broken,
            previous_schema=schema_of(manifest, "previous_schema"),
            sample_fraction=_sample_fraction(plan, storage),
        )
    for outcome in outcomes:
        outcome.extra["storage_version"] = MetadataValue.text(manifest["version"])
    return outcomes


def outcome_record(outcome: CheckOutcome) -> dict[str, Any]:
    """What the manifest keeps of a check result, to report it again when the version is
    reused."""
    return {
        "name": outcome.check.name,
        "passed": outcome.passed,
        "failing_rows": outcome.failing_rows,
        "rows": outcome.rows,
        "message": outcome.message,
    }


def stored_outcomes(plan: CheckPlan | None, record: Mapping[str, Any]) -> list[CheckOutcome] | None:
    """The selected checks' results stored with a version (None: one is missing)."""
    if plan is None or not plan.checks:
        return []
    stored = {c["name"]: c for c in record.get("checks") or []}
    outcomes = []
    for check in plan.checks:
        result = stored.get(check.name)
        if result is None:
            return None
        outcomes.append(
            CheckOutcome(
                check,
                bool(result["passed"]),
                failing_rows=result.get("failing_rows"),
                rows=result.get("rows"),
                message=result.get("message") or "",
                extra={
                    MetadataKey.CACHED: MetadataValue.bool(True),
                    "storage_version": MetadataValue.text(str(record["version"])),
                },
            )
        )
    return outcomes


def emit(state: StepState) -> Iterator[AssetCheckResult | AssetCheckEvaluation]:
    """The step's check results, in order: results of an asset, evaluation events of an op
    (an op has no check specs, but can log the events, even right before the step fails)."""
    plan = state.plan
    if plan is None:
        return
    for outcome in state.outcomes:
        yield outcome.evaluation(plan) if state.checks_as_events else outcome.result(plan)


def blocked_failure(state: StepState, blocked: list[CheckOutcome], rejected: str | None) -> Failure:
    """The run's failure when blocking checks failed: what failed, where the rejected output
    is, which version stays current, and what to do."""
    details = "; ".join(_failure_line(o) for o in blocked)
    storage = state.storage
    current = storage.store.current_manifest(state.key, state.partition) if storage else None
    kept = (
        f"The previous version {current['version']} stays current."
        if current
        else "No earlier version exists, so nothing is published."
    )
    aside = f" The rejected output is kept for inspection at {rejected}." if rejected else ""
    return Failure(
        description=(
            f"Factory {state.node.name} (asset {state.asset}) failed blocking check(s): "
            f"{details}.{aside} {kept} Downstream Factories were not run. Fix the data or the "
            "Factory and materialize again (or make the check non-blocking with "
            "Validation(blocking=...))."
        ),
        metadata={
            "blocking_checks_failed": MetadataValue.json([o.check.name for o in blocked]),
            **({"rejected_version": MetadataValue.path(str(rejected))} if rejected else {}),
        },
    )


def _failure_line(outcome: CheckOutcome) -> str:
    """One failed check in the run's failure message: its name, failing rows, and what the
    check says (our own words: never a raw pandera repr)."""
    check = outcome.check
    if outcome.failing_rows is not None and check.kind not in {"columns", "drift"}:
        of = f" of {outcome.rows}" if outcome.rows is not None else ""
        line = f"{check.name}: {outcome.failing_rows}{of} failing row(s)"
    else:
        line = f"{check.name}: failed"
    detail = (
        outcome.message if check.kind in {"columns", "custom"} or not outcome.failing_rows else ""
    )
    detail = detail or ""
    return f"{line} ({detail[:300]})" if detail and detail not in line else line


def schema_of(manifest: Mapping[str, Any] | None, field: str) -> StructType | None:
    raw = (manifest or {}).get(field)
    return StructType.fromJson(json.loads(raw)) if raw else None


def _sample_fraction(plan: CheckPlan, storage: SparkParquetIOManager) -> float | None:
    return plan.validation.sample_fraction or storage.check_sample_fraction
