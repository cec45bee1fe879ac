"""The step every Factory goes through, whether Dagster runs it as an asset or in a Stage op.

    run the Factory -> write a new version (checks observed during the write)
    -> audit it -> publish it (or keep it aside when a blocking check failed) -> report

Both surfaces call `factory_step`; what differs between them (how check results are emitted,
what is selected) is passed in. What comes next hooks in here: cache lookup, conditions, metrics.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    Failure,
    MetadataValue,
    OpExecutionContext,
    Output,
)
from pyspark.sql import DataFrame
from pyspark.sql.types import StructType

from .checks import (
    IN_MEMORY_ENGINES,
    CheckOutcome,
    CheckPlan,
    ValidationDepth,
    evaluate,
    evaluate_pandas,
    observed_exprs,
    summary_table,
)
from .errors import PySetlFactoryError
from .graph import FactoryNode
from .io_managers import SparkParquetIOManager, StoredVersion
from .observability import asset_scope
from .runner import factory_error_message, run_factory
from .specs import TranslatedPipeline, input_name

SPARK_RESOURCE_KEY = "pyspark"

StepContext = AssetExecutionContext | OpExecutionContext


def factory_step(
    context: StepContext,
    translated: TranslatedPipeline,
    node: FactoryNode,
    loaded: Mapping[str, Any],
    config: Any,
    *,
    io_manager_key: str = "io_manager",
    materialize: bool = True,
    check_keys: set[AssetCheckKey] | None = None,
    checks_as_events: bool = False,
) -> Iterator[Output[Any] | AssetCheckResult | AssetCheckEvaluation]:
    """Run one Factory inside a Dagster step and yield its output and check results.

    Args:
        loaded: Dagster input name -> upstream value; external inputs come from the graph.
        materialize: False when only the asset's checks were selected (run against the
            stored output, as the UI's "Execute checks" does).
        check_keys: the selected checks (None: all).
        checks_as_events: log check results as events (ops cannot yield `AssetCheckResult`).
    """
    key = translated.key_of(node)
    storage = getattr(context.resources, io_manager_key, None)
    plan = _effective_plan(translated.check_plans.get(node), storage, check_keys)
    # An unpartitioned Factory in a partitioned run (one job holds both) keeps one output.
    partitioned = translated.factory_specs[node].partitions_def is not None
    partition = context.partition_key if partitioned and context.has_partition_key else None

    if not materialize:
        if plan is not None and plan.checks:
            outcomes = _check_stored(context, plan, storage, key, partition)
            yield from _emit(context, plan, outcomes, checks_as_events)
        return

    values = translated.external_values(node)
    for resolved in translated.graph.inputs[node]:
        if isinstance(resolved.source, FactoryNode):
            values[resolved.attribute] = loaded[input_name(translated, resolved.source)]
    spark = getattr(context.resources, SPARK_RESOURCE_KEY).spark_session
    asset = key.to_user_string()
    run_id = context.run.run_id
    run = run_factory(
        node,
        values,
        spark=spark,
        run_id=run_id,
        asset=asset,
        config=config,
        partition_key=partition,
    )
    output_name = key.to_python_identifier()
    metadata = run.metadata()

    if isinstance(storage, SparkParquetIOManager) and isinstance(run.output, DataFrame):
        try:
            stored, outcomes = _write_and_audit(
                storage, plan, run.output, key, partition, run_id=run_id
            )
        except Exception as exc:
            # The Factory's lazy work runs in the write: fail with the Factory's context.
            where = "the write of its output (nothing was published)"
            raise PySetlFactoryError(
                factory_error_message(node, asset, where, exc, spark, run_id)
            ) from exc
        metadata.update(storage.spark_metadata(run.output, run_id, asset))
        blocked = [o for o in outcomes if o.blocks]
        if blocked:
            rejected = storage.reject(stored)
            for outcome in outcomes:
                outcome.extra["rejected_version"] = MetadataValue.path(str(rejected))
            yield from _emit(context, plan, outcomes, checks_as_events)
            raise _blocked_failure(node.name, asset, blocked, rejected, storage, key, partition)
        value: Any = storage.publish(stored, run_id)
    else:
        outcomes = _audit_in_memory(plan, run.output)
        blocked = [o for o in outcomes if o.blocks]
        if blocked:
            yield from _emit(context, plan, outcomes, checks_as_events)
            raise _blocked_failure(node.name, asset, blocked, None, storage, key, partition)
        value = run.output

    if outcomes:
        metadata["pysetl/checks"] = summary_table(outcomes)
        metadata["pysetl/checks_failed"] = MetadataValue.int(sum(not o.passed for o in outcomes))
        if outcomes[0].seconds is not None:
            metadata["pysetl/checks_s"] = MetadataValue.float(round(outcomes[0].seconds, 4))
    yield Output(value, output_name=output_name, metadata=metadata)
    if plan is not None:
        yield from _emit(context, plan, outcomes, checks_as_events)


def _effective_plan(
    plan: CheckPlan | None, storage: Any, check_keys: set[AssetCheckKey] | None
) -> CheckPlan | None:
    if plan is None:
        return None
    default = (
        ValidationDepth(storage.validation_depth)
        if isinstance(storage, SparkParquetIOManager)
        else ValidationDepth.SCHEMA_AND_DATA
    )
    depth = ValidationDepth(plan.validation.depth or default)
    return plan.selected(check_keys).with_depth(depth)


def _sample_fraction(plan: CheckPlan, storage: SparkParquetIOManager) -> float | None:
    return plan.validation.sample_fraction or storage.check_sample_fraction


def _write_and_audit(
    storage: SparkParquetIOManager,
    plan: CheckPlan | None,
    output: DataFrame,
    key: AssetKey,
    partition: str | None,
    *,
    run_id: str,
) -> tuple[StoredVersion, list[CheckOutcome]]:
    """Write the new version with every row-level check observed during the write, then
    evaluate the rest on the written files (never on the Factory's lineage again)."""
    spark_plan = plan if plan is not None and plan.engine == "pyspark" else None
    exprs, broken = observed_exprs(spark_plan, output) if spark_plan else ([], {})
    location = storage.asset_dir(key, partition)
    previous = storage.current_manifest(key, partition)
    asset = key.to_user_string()
    stored = storage.write_version(
        key, location, output, observe=exprs or None, run_id=run_id, label=asset
    )
    if spark_plan is None:
        return stored, []
    start = time.perf_counter()
    with asset_scope(output.sparkSession, run_id, asset, "asset checks"):
        outcomes = evaluate(
            spark_plan,
            storage.read_version(stored.path, stored.schema_json),
            stored.observed,
            broken=broken,
            previous_schema=_schema_of(previous, "schema"),
            sample_fraction=_sample_fraction(spark_plan, storage),
        )
    for outcome in outcomes:
        outcome.seconds = time.perf_counter() - start
    return stored, outcomes


def _audit_in_memory(plan: CheckPlan | None, output: Any) -> list[CheckOutcome]:
    """Checks on a value that is not stored by this project's storage (a pandas DataFrame, or
    another IO manager): evaluated before the value is handed over, so nothing bad is stored."""
    if plan is None:
        return []
    if plan.engine in IN_MEMORY_ENGINES:
        return evaluate_pandas(plan, output)
    if isinstance(output, DataFrame):
        exprs, broken = observed_exprs(plan, output)
        observed = output.agg(*exprs).first()
        return evaluate(plan, output, observed.asDict() if observed else {}, broken=broken)
    return []


def _check_stored(
    context: StepContext,
    plan: CheckPlan,
    storage: Any,
    key: AssetKey,
    partition: str | None,
) -> list[CheckOutcome]:
    """Evaluate checks against the current stored version: one Spark job reading only the
    checked columns, plus uniqueness and custom checks if selected."""
    if not isinstance(storage, SparkParquetIOManager) or plan.engine != "pyspark":
        raise PySetlFactoryError(
            f"Checks of asset {key.to_user_string()} can run on their own only on a Spark output "
            "stored by SparkParquetIOManager; materialize the asset to run them."
        )
    manifest = storage.current_manifest(key, partition)
    if manifest is None:
        raise Failure(
            description=f"Asset {key.to_user_string()} has no stored output to check. "
            "Materialize it first."
        )
    path = storage.asset_dir(key, partition) / manifest["version"]
    spark = getattr(context.resources, SPARK_RESOURCE_KEY).spark_session
    asset, run_id = key.to_user_string(), context.run.run_id
    with asset_scope(spark, run_id, asset, "asset checks on the stored output"):
        written = storage.read_version(path, manifest.get("schema"))
        exprs, broken = observed_exprs(plan, written)
        row = written.agg(*exprs).first()
        outcomes = evaluate(
            plan,
            written,
            row.asDict() if row else {},
            broken=broken,
            previous_schema=_schema_of(manifest, "previous_schema"),
            sample_fraction=_sample_fraction(plan, storage),
        )
    for outcome in outcomes:
        outcome.extra["storage_version"] = MetadataValue.text(manifest["version"])
    return outcomes


def _schema_of(manifest: Mapping[str, Any] | None, field: str) -> StructType | None:
    raw = (manifest or {}).get(field)
    return StructType.fromJson(json.loads(raw)) if raw else None


def _emit(
    context: StepContext,
    plan: CheckPlan | None,
    outcomes: list[CheckOutcome],
    as_events: bool,
) -> Iterator[AssetCheckResult | AssetCheckEvaluation]:
    if plan is None:
        return
    for outcome in outcomes:
        # an op cannot yield AssetCheckResult (it has no check specs), but it can yield the
        # evaluation event itself, in order, even right before the step fails
        yield outcome.evaluation(plan) if as_events else outcome.result(plan)


def _blocked_failure(
    factory: str,
    asset: str,
    blocked: list[CheckOutcome],
    rejected: Path | None,
    storage: Any,
    key: AssetKey,
    partition: str | None,
) -> Failure:
    details = "; ".join(
        f"{o.check.name}: {o.message or f'{o.failing_rows} failing row(s)'}" for o in blocked
    )
    current = (
        storage.current_manifest(key, partition)
        if isinstance(storage, SparkParquetIOManager)
        else None
    )
    kept = (
        f"The previous version {current['version']} stays current."
        if current
        else "No earlier version exists, so nothing is published."
    )
    aside = f" The rejected output is kept for inspection at {rejected}." if rejected else ""
    return Failure(
        description=(
            f"Factory {factory} (asset {asset}) failed blocking check(s): {details}.{aside} "
            f"{kept} Downstream Factories were not run. Fix the data or the Factory and "
            "materialize again (or make the check non-blocking with Validation(blocking=...))."
        ),
        metadata={
            "blocking_checks_failed": MetadataValue.json([o.check.name for o in blocked]),
            **({"rejected_version": MetadataValue.path(str(rejected))} if rejected else {}),
        },
    )
