"""The step every Factory goes through, whether Dagster runs it as an asset or in a Stage op.

    run the Factory -> write a new version (checks observed during the write)
    -> audit it -> publish it (or keep it aside when a blocking check failed) -> report

Both surfaces call `factory_step`; what differs between them (how check results are emitted,
what is selected) is passed in. What comes next hooks in here: cache lookup, conditions, metrics.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    AssetObservation,
    BetaWarning,
    DataVersion,
    Failure,
    MetadataValue,
    OpExecutionContext,
    Output,
)
from pyspark.sql import DataFrame
from pyspark.sql.types import StructType

from pysetl_dagster.automation.conditions import (
    SKIPPED,
    choose_branch,
    evaluate_condition,
    skipped_upstream,
)
from pysetl_dagster.checks.plan import (
    IN_MEMORY_ENGINES,
    CheckOutcome,
    CheckPlan,
    ValidationDepth,
    evaluate,
    evaluate_pandas,
    observed_exprs,
    summary_table,
)
from pysetl_dagster.errors import PySetlFactoryError
from pysetl_dagster.execution.inputs import linked_manifests, resolve_links
from pysetl_dagster.execution.runner import (
    OwnSink,
    factory_error_message,
    run_factory,
    write_own_sink,
)
from pysetl_dagster.metadata import MetadataKey
from pysetl_dagster.spark.labels import asset_scope
from pysetl_dagster.spark.memory import DriverMemory, memory_metadata, persist_output, release
from pysetl_dagster.storage.caching import (
    CACHE_TAG,
    CacheDecision,
    cache_policy,
    compute_key,
    decide,
    factory_state,
    force_requested,
)
from pysetl_dagster.storage.io_manager import SparkParquetIOManager, StoredVersion
from pysetl_dagster.translation.diagram import mermaid_diagram
from pysetl_dagster.translation.graph import FactoryNode
from pysetl_dagster.translation.links import without_links
from pysetl_dagster.translation.specs import TranslatedPipeline, input_name

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
    output_name = key.to_python_identifier()
    skip = _skip_reason(context, translated, node, values, config, spark, asset)
    if skip is not None:  # the condition is false: no output, shown as skipped, not failed
        yield from _skip(context, key, partition, node, skip, output_name, checks_as_events)
        return
    run_node, taken = _chosen_branch(context, translated, node, values, config, spark, asset)
    cache = _cache_decision(
        context, translated, node, storage, partition, loaded, config, plan, run_node
    )
    if cache is not None and cache.reuse is not None:
        reused = _stored_outcomes(plan, cache.reuse)
        if reused is not None and isinstance(storage, SparkParquetIOManager):
            yield from _reuse(context, translated, node, storage, partition, cache, output_name)
            yield from _emit(context, plan, reused, checks_as_events)
            return
        cache.reuse = None
        cache.reason = "recomputed: a selected check has no stored result for the stored version"
    values = resolve_links(values, storage, spark, run_id=run_id, label=asset)
    driver = DriverMemory.start(spark)
    # the output is stored again below: the Factory's own write() must not recompute it
    own_sink: OwnSink = "inline"
    if isinstance(storage, SparkParquetIOManager):
        own_sink = storage.own_sink
    run = run_factory(
        run_node,
        values,
        spark=spark,
        run_id=run_id,
        asset=asset,
        config=config,
        own_sink=own_sink,
        partition_key=partition,
    )
    metadata = run.metadata()
    if taken is not None:
        metadata[MetadataKey.BRANCH_TAKEN] = MetadataValue.text(taken)
    if getattr(storage, "debug_plans", False):  # debug mode: where this Factory sits
        diagram = mermaid_diagram(translated, highlight=node)
        metadata[MetadataKey.DIAGRAM] = MetadataValue.md(f"```mermaid\n{diagram}\n```")

    if isinstance(storage, SparkParquetIOManager) and isinstance(run.output, DataFrame):
        if storage.in_run_handover == "memory":  # consumers in this run get it from memory
            run.persisted = storage.track(run.persisted or persist_output(run.output))
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
        finally:
            if storage.in_run_handover != "memory":
                release(run.persisted)  # the lineage ran once: both writes are done
        metadata.update(storage.spark_metadata(run.output, run_id, asset))
        metadata.update(memory_metadata(spark, driver))
        blocked = [o for o in outcomes if o.blocks]
        if blocked:
            rejected = storage.reject(stored)
            for outcome in outcomes:
                outcome.extra["rejected_version"] = MetadataValue.path(str(rejected))
            yield from _emit(context, plan, outcomes, checks_as_events)
            raise _blocked_failure(node.name, asset, blocked, rejected, storage, key, partition)
        if run.deferred_write:  # the Factory's own sink, fed from the stored version
            try:
                written = storage.read_version(stored.path, stored.schema_json)
                write_own_sink(run, node, written, spark=spark, run_id=run_id, asset=asset)
            except Exception:
                storage.reject(stored)
                raise
            metadata.update(run.metadata())
        extra: dict[str, Any] = {"checks": [_outcome_record(o) for o in outcomes]}
        if cache is not None:
            extra.update(cache.manifest_fields(stored.version, run_id))
            stored = replace(
                stored,
                data_version=cache.data_version(stored.version),
                code_version=translated.factory_specs[node].code_version,
            )
        value: Any = storage.publish(stored, run_id, extra)
        storage.hand_over(value, run.persisted)  # only a published version reaches consumers
    else:
        outcomes = _audit_in_memory(plan, run.output)
        blocked = [o for o in outcomes if o.blocks]
        if blocked:
            yield from _emit(context, plan, outcomes, checks_as_events)
            raise _blocked_failure(node.name, asset, blocked, None, storage, key, partition)
        value = run.output
        release(run.persisted)
        metadata.update(memory_metadata(spark, driver))

    if outcomes:
        metadata[MetadataKey.CHECKS] = summary_table(outcomes)
        metadata[MetadataKey.CHECKS_FAILED] = MetadataValue.int(sum(not o.passed for o in outcomes))
        if outcomes[0].seconds is not None:
            metadata[MetadataKey.CHECKS_S] = MetadataValue.float(round(outcomes[0].seconds, 4))
    data_version = None
    if cache is not None and isinstance(value, StoredVersion):
        metadata.update(cache.metadata())
        data_version = value.data_version
    yield _output(value, output_name, metadata, data_version, op_surface=checks_as_events)
    if plan is not None:
        yield from _emit(context, plan, outcomes, checks_as_events)


def _skip_reason(
    context: StepContext,
    translated: TranslatedPipeline,
    node: FactoryNode,
    values: Mapping[str, Any],
    config: Any,
    spark: Any,
    asset: str,
) -> str | None:
    """Why the Factory does not run (None: it runs): an input from a skipped Factory (Stage
    job), or its condition is false (a data condition is one Spark aggregate, labelled)."""
    skipped = skipped_upstream(values)
    if skipped:
        return f"its input(s) {', '.join(skipped)} come from skipped Factories"
    resolved = translated.conditions.get(node)
    if resolved is None:
        return None
    with asset_scope(spark, context.run.run_id, asset, f"{node.name} condition"):
        verdict = evaluate_condition(resolved, tags=context.run.tags, config=config, values=values)
    if verdict.holds:
        context.log.info(f"Factory {node.name} (asset {asset}) runs: {verdict.reason}.")
        return None
    return f"condition false: {verdict.reason}"


def _chosen_branch(
    context: StepContext,
    translated: TranslatedPipeline,
    node: FactoryNode,
    values: Mapping[str, Any],
    config: Any,
    spark: Any,
    asset: str,
) -> tuple[FactoryNode, str | None]:
    """What runs: the Factory itself, or the alternative its branch condition picks."""
    resolved = translated.branches.get(node)
    if resolved is None:
        return node, None
    with asset_scope(spark, context.run.run_id, asset, f"{node.name} branch condition"):
        chosen, verdict = choose_branch(
            node.factory, resolved, tags=context.run.tags, config=config, values=values
        )
    taken = f"{type(chosen).__name__} ({verdict.reason})"
    context.log.info(f"Branch {node.name} (asset {asset}) runs {taken}.")
    return FactoryNode(chosen, node.stage_index), taken


def _skip(
    context: StepContext,
    key: AssetKey,
    partition: str | None,
    node: FactoryNode,
    reason: str,
    output_name: str,
    op_surface: bool,
) -> Iterator[Output[Any]]:
    """Log and record the skip; an asset yields nothing (Dagster skips its dependents), a
    Stage op yields the SKIPPED marker (its consumers skip themselves; see conditions.py)."""
    message = f"Factory {node.name} (asset {key.to_user_string()}) skipped: {reason}."
    context.log.info(message)
    context.log_event(
        AssetObservation(
            asset_key=key,
            partition=partition,
            description=message,
            metadata={MetadataKey.SKIPPED: MetadataValue.text(reason)},
        )
    )
    if op_surface:
        yield Output(SKIPPED, output_name=output_name, metadata={MetadataKey.SKIPPED: reason})


def _output(
    value: Any,
    output_name: str,
    metadata: dict[str, Any],
    data_version: str | None,
    *,
    op_surface: bool,
) -> Output[Any]:
    """An asset's output carries its data version; a Stage op's cannot (it is not an asset
    output), so the IO manager records it on the materialization it logs."""
    if data_version is None or op_surface:
        return Output(value, output_name=output_name, metadata=metadata)
    with warnings.catch_warnings():  # `data_version` is marked beta; it is what Dagster reads
        warnings.simplefilter("ignore", BetaWarning)
        return Output(
            value,
            output_name=output_name,
            metadata=metadata,
            data_version=DataVersion(data_version),
        )


def _cache_decision(
    context: StepContext,
    translated: TranslatedPipeline,
    node: FactoryNode,
    storage: Any,
    partition: str | None,
    loaded: Mapping[str, Any],
    config: Any,
    plan: CheckPlan | None,
    run_node: FactoryNode | None = None,
) -> CacheDecision | None:
    """Whether this Factory's output can be reused (None: its storage does not cache).
    `run_node`: what actually runs (a branch's chosen alternative), whose code is keyed."""
    run_node = run_node or node
    if not isinstance(storage, SparkParquetIOManager) or not storage.cache:
        return None
    key = translated.key_of(node)
    upstream = {
        resolved.attribute: storage.loaded_manifest(loaded[input_name(translated, resolved.source)])
        for resolved in translated.graph.inputs[node]
        if isinstance(resolved.source, FactoryNode)
    }
    externals = translated.external_values(node)
    upstream.update(linked_manifests(externals, storage))  # another pipeline's outputs
    cache_key = compute_key(
        run_node.factory_type,
        config=config,
        instance_state=factory_state(run_node.factory),
        upstream=upstream,
        externals=without_links(externals),
        partition=partition,
        checks=[
            f"{c.name}|{c.severity}|{c.blocking}|{c.description}"
            for c in (plan.checks if plan is not None else ())
        ],
    )
    tags = context.run.tags
    records = storage.cache_records(key, partition)
    invalidated = records[0].get("cache_invalidated_at") if records else None
    return decide(
        cache_key,
        cache_policy(
            translated.declarations[node].cache,
            translated.declarations[node].cache_ttl_seconds,
            storage.cache_ttl_s,
        ),
        records,
        forced=force_requested(tags, [key.to_user_string(), node.name]),
        disabled_by_run=tags.get(CACHE_TAG, "").strip().lower() == "off",
        invalidated_at=float(invalidated) if invalidated else None,
    )


def _reuse(
    context: StepContext,
    translated: TranslatedPipeline,
    node: FactoryNode,
    storage: SparkParquetIOManager,
    partition: str | None,
    cache: CacheDecision,
    output_name: str,
) -> Iterator[Output[Any]]:
    """Record a stored version as this run's materialization: no Spark job, nothing written."""
    assert cache.reuse is not None
    key = translated.key_of(node)
    current = storage.current_manifest(key, partition)
    version = str(cache.reuse["version"])
    if current is None or current.get("version") != version:
        # an older kept version matches (e.g. a change reverted): make it current again
        storage.make_current(key, partition, version, context.run.run_id)
        cache.reason += " (an older kept version, made current again)"
    stored = replace(
        storage.stored_from_record(key, partition, cache.reuse),
        data_version=cache.data_version(str(cache.reuse["version"])),
        code_version=translated.factory_specs[node].code_version,
    )
    context.log.info(
        f"Factory {node.name} (asset {key.to_user_string()}): {cache.reason}; computed by run "
        f"{cache.reuse.get('computed_by_run') or cache.reuse.get('run_id')}."
    )
    yield _output(
        stored,
        output_name,
        cache.metadata(),
        stored.data_version,
        op_surface=isinstance(context, OpExecutionContext)
        and not isinstance(context, AssetExecutionContext),
    )


def _outcome_record(outcome: CheckOutcome) -> dict[str, Any]:
    """What the manifest keeps of a check result, to report it again when the version is
    reused."""
    return {
        "name": outcome.check.name,
        "passed": outcome.passed,
        "failing_rows": outcome.failing_rows,
        "rows": outcome.rows,
        "message": outcome.message,
    }


def _stored_outcomes(
    plan: CheckPlan | None, record: Mapping[str, Any]
) -> list[CheckOutcome] | None:
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
    try:
        with asset_scope(output.sparkSession, run_id, asset, "asset checks"):
            outcomes = evaluate(
                spark_plan,
                storage.read_version(stored.path, stored.schema_json),
                stored.observed,
                broken=broken,
                previous_schema=_schema_of(previous, "schema"),
                sample_fraction=_sample_fraction(spark_plan, storage),
            )
    except BaseException:
        storage.abandon(stored)  # never published: do not leave it leased
        raise
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
    rejected: str | None,
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
