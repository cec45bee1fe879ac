"""The step every Factory goes through, whether Dagster runs it as an asset or in a Stage op.

    decide (condition, branch, cache) -> compute (the Factory's read/process/write)
    -> store and audit (a new version, checks observed during the write)
    -> publish or reject (a blocking check failed) -> report (output, metadata, checks)

Each phase is a function of one `StepState` (see `state.py`); both surfaces call
`factory_step`, and what differs between them (how check results are emitted, what is
selected) is in the state.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetCheckResult,
    AssetObservation,
    BetaWarning,
    DataVersion,
    MetadataValue,
    Output,
)
from pyspark.sql import DataFrame

from pysetl_dagster.automation.branching import record_exprs, recorded_aggregates, recorded_values
from pysetl_dagster.automation.conditions import SKIPPED
from pysetl_dagster.checks.plan import summary_table
from pysetl_dagster.errors import PySetlFactoryError
from pysetl_dagster.execution.audit import (
    audit_in_memory,
    blocked_failure,
    check_stored,
    emit,
    outcome_record,
    stored_outcomes,
    write_and_audit,
)
from pysetl_dagster.execution.decide import (
    check_decided_versions,
    decide_branch,
    decide_cache,
    decide_skip,
    gather_inputs,
    reusable,
)
from pysetl_dagster.execution.inputs import resolve_links
from pysetl_dagster.execution.runner import factory_error_message, run_factory, write_own_sink
from pysetl_dagster.execution.state import SPARK_RESOURCE_KEY, StepContext, StepState
from pysetl_dagster.metadata import MetadataKey
from pysetl_dagster.spark.memory import DriverMemory, memory_metadata, persist_output, release
from pysetl_dagster.storage.io_manager import StoredVersion
from pysetl_dagster.translation.diagram import mermaid_diagram
from pysetl_dagster.translation.graph import FactoryNode
from pysetl_dagster.translation.specs import TranslatedPipeline

__all__ = ["SPARK_RESOURCE_KEY", "StepContext", "factory_step"]

StepEvent = Output[Any] | AssetCheckResult | AssetCheckEvaluation


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
) -> Iterator[StepEvent]:
    """Run one Factory inside a Dagster step and yield its output and check results.

    Args:
        loaded: Dagster input name -> upstream value; external inputs come from the graph.
        materialize: False when only the asset's checks were selected (run against the
            stored output, as the UI's "Execute checks" does).
        check_keys: the selected checks (None: all).
        checks_as_events: log check results as events (ops cannot yield `AssetCheckResult`).
    """
    state = StepState.start(
        context,
        translated,
        node,
        loaded,
        config,
        io_manager_key=io_manager_key,
        check_keys=check_keys,
        checks_as_events=checks_as_events,
    )
    if not materialize:
        if state.plan is not None and state.plan.checks:
            state.outcomes = check_stored(state)
            yield from emit(state)
        return

    gather_inputs(state)
    check_decided_versions(state)
    decide_skip(state)
    if state.skip_reason is not None:  # no output, shown as skipped, not failed
        yield from skip(state)
        return
    decide_branch(state)
    decide_cache(state)
    if reusable(state) is not None:
        yield from reuse(state)
        if reusable(state) is not None:
            return

    compute(state)
    if state.storage is not None and isinstance(state.run_output, DataFrame):
        yield from store_and_audit(state)
        publish(state)
    else:
        yield from audit_value(state)
    yield from report(state)


# -- decide: skip or reuse ---------------------------------------------------------------------


def skip(state: StepState) -> Iterator[Output[Any]]:
    """Log and record the skip; an asset yields nothing (Dagster skips its dependents), a
    Stage op yields the SKIPPED marker (its consumers skip themselves; see conditions.py)."""
    reason = state.skip_reason
    message = f"Factory {state.node.name} (asset {state.asset}) skipped: {reason}."
    state.context.log.info(message)
    state.context.log_event(
        AssetObservation(
            asset_key=state.key,
            partition=state.partition,
            description=message,
            metadata={MetadataKey.SKIPPED: MetadataValue.text(str(reason))},
        )
    )
    if state.checks_as_events:
        yield Output(SKIPPED, output_name=state.output_name, metadata={MetadataKey.SKIPPED: reason})


def reuse(state: StepState) -> Iterator[StepEvent]:
    """Record a stored version as this run's materialization: no Spark job, nothing written.

    When a selected check has no stored result for that version, nothing is yielded and the
    decision turns into a recompute."""
    cache, storage = state.cache, state.storage
    assert cache is not None and cache.reuse is not None and storage is not None
    reused = stored_outcomes(state.plan, cache.reuse)
    if reused is None:
        cache.reuse = None
        cache.reason = "recomputed: a selected check has no stored result for the stored version"
        return
    current = storage.store.current_manifest(state.key, state.partition)
    version = str(cache.reuse["version"])
    if current is None or current.get("version") != version:
        # an older kept version matches (e.g. a change reverted): make it current again
        storage.store.make_current(state.key, state.partition, version, state.run_id)
        cache.reason += " (an older kept version, made current again)"
    stored = replace(
        storage.store.stored_from_record(state.key, state.partition, cache.reuse),
        data_version=cache.data_version(version),
        code_version=state.translated.factory_specs[state.node].code_version,
    )
    state.context.log.info(
        f"Factory {state.node.name} (asset {state.asset}): {cache.reason}; computed by run "
        f"{cache.reuse.get('computed_by_run') or cache.reuse.get('run_id')}."
    )
    yield output(state, stored, cache.metadata(), stored.data_version)
    state.outcomes = reused
    yield from emit(state)


# -- compute ----------------------------------------------------------------------------------


def compute(state: StepState) -> None:
    """Run the Factory (or its branch's chosen alternative) on its inputs, linked inputs
    read from the other pipeline's stored version."""
    storage = state.storage
    state.values = resolve_links(
        state.values, state.io_manager, state.spark, run_id=state.run_id, label=state.asset
    )
    state.driver = DriverMemory.start(state.spark)
    state.run = run_factory(
        state.run_node or state.node,
        state.values,
        spark=state.spark,
        run_id=state.run_id,
        asset=state.asset,
        config=state.config,
        # the output is stored again by the step: the Factory's own write() must not
        # recompute it
        own_sink=storage.own_sink if storage is not None else "inline",
        partition_key=state.partition,
        log_format=state.log_format,
    )
    metadata = state.run.metadata()
    if state.branch_taken is not None:
        metadata[MetadataKey.BRANCH_TAKEN] = MetadataValue.text(state.branch_taken)
    if storage is not None and storage.debug_plans:  # debug mode: where this Factory sits
        diagram = mermaid_diagram(state.translated, highlight=state.node)
        metadata[MetadataKey.DIAGRAM] = MetadataValue.md(f"```mermaid\n{diagram}\n```")
    state.metadata = metadata


# -- store and audit, publish or reject --------------------------------------------------------


def store_and_audit(state: StepState) -> Iterator[StepEvent]:
    """Write the new version next to the current one and audit it; a failed blocking check
    moves it aside (never current), emits the results and fails the step."""
    storage, run = state.storage, state.run
    assert storage is not None and run is not None
    if storage.in_run_handover == "memory":  # consumers in this run get it from memory
        run.persisted = storage.track(run.persisted or persist_output(run.output))
    try:
        recorded = record_exprs(
            recorded_aggregates(state.translated, state.node), run.output, state.context.log
        )
        state.stored, state.outcomes = write_and_audit(
            storage,
            state.plan,
            run.output,
            state.key,
            state.partition,
            run_id=state.run_id,
            recorded=recorded,
        )
    except Exception as exc:
        # The Factory's lazy work runs in the write: fail with the Factory's context.
        where = "the write of its output (nothing was published)"
        raise PySetlFactoryError(
            factory_error_message(state.node, state.asset, where, exc, state.spark, state.run_id)
        ) from exc
    finally:
        if storage.in_run_handover != "memory":
            release(run.persisted)  # the lineage ran once: both writes are done
    state.metadata.update(
        storage.spark_metadata(run.output, state.run_id, state.asset, stored=state.stored)
    )
    assert state.driver is not None
    state.metadata.update(memory_metadata(state.spark, state.driver))
    blocked = [o for o in state.outcomes if o.blocks]
    if blocked:
        rejected = storage.store.reject(state.stored)
        for outcome in state.outcomes:
            outcome.extra["rejected_version"] = MetadataValue.path(str(rejected))
        yield from emit(state)
        raise blocked_failure(state, blocked, rejected)


def publish(state: StepState) -> None:
    """Feed the Factory's own sink from the stored version (if deferred), then make the
    version current with its check results and cache key; consumers in this run get only a
    published version."""
    storage, run, stored = state.storage, state.run, state.stored
    assert storage is not None and run is not None and stored is not None
    if run.deferred_write:  # the Factory's own sink, fed from the stored version
        try:
            written = storage.store.read_version(stored.path, stored.schema_json)
            write_own_sink(
                run,
                state.node,
                written,
                spark=state.spark,
                run_id=state.run_id,
                asset=state.asset,
            )
        except Exception:
            storage.store.reject(stored)
            raise
        state.metadata.update(run.metadata())
    extra: dict[str, Any] = {"checks": [outcome_record(o) for o in state.outcomes]}
    aggregates = recorded_values(stored.observed)  # read by branching sensors
    if aggregates:
        extra["aggregates"] = aggregates
        state.metadata[MetadataKey.AGGREGATES] = MetadataValue.json(aggregates)
    if state.cache is not None:
        extra.update(state.cache.manifest_fields(stored.version, state.run_id))
        stored = replace(
            stored,
            data_version=state.cache.data_version(stored.version),
            code_version=state.translated.factory_specs[state.node].code_version,
        )
    state.value = storage.store.publish(stored, state.run_id, extra)
    storage.hand_over(state.value, run.persisted)


def audit_value(state: StepState) -> Iterator[StepEvent]:
    """A value the step does not store itself (pandas, another IO manager): checked in memory
    before it is handed over, so nothing bad reaches the IO manager."""
    run = state.run
    assert run is not None
    state.outcomes = audit_in_memory(state.plan, run.output)
    blocked = [o for o in state.outcomes if o.blocks]
    if blocked:
        yield from emit(state)
        raise blocked_failure(state, blocked, None)
    state.value = run.output
    release(run.persisted)
    assert state.driver is not None
    state.metadata.update(memory_metadata(state.spark, state.driver))


# -- report -----------------------------------------------------------------------------------


def report(state: StepState) -> Iterator[StepEvent]:
    """The output with its metadata (checks summary, cache decision, data version), then the
    check results."""
    metadata, outcomes = state.metadata, state.outcomes
    if outcomes:
        metadata[MetadataKey.CHECKS] = summary_table(outcomes)
        metadata[MetadataKey.CHECKS_FAILED] = MetadataValue.int(sum(not o.passed for o in outcomes))
        if outcomes[0].seconds is not None:
            metadata[MetadataKey.CHECKS_S] = MetadataValue.float(round(outcomes[0].seconds, 4))
    data_version = None
    if state.cache is not None and isinstance(state.value, StoredVersion):
        metadata.update(state.cache.metadata())
        data_version = state.value.data_version
    yield output(state, state.value, metadata, data_version)
    yield from emit(state)


def output(
    state: StepState, value: Any, metadata: dict[str, Any], data_version: str | None
) -> Output[Any]:
    """An asset's output carries its data version; a Stage op's cannot (it is not an asset
    output), so the IO manager records it on the materialization it logs."""
    if data_version is None or state.checks_as_events:
        return Output(value, output_name=state.output_name, metadata=metadata)
    with warnings.catch_warnings():  # `data_version` is marked beta; it is what Dagster reads
        warnings.simplefilter("ignore", BetaWarning)
        return Output(
            value,
            output_name=state.output_name,
            metadata=metadata,
            data_version=DataVersion(data_version),
        )
