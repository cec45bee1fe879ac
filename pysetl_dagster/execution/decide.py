"""Phase 1 of the step, decide: does the Factory run, which alternative, and can a stored
version be reused instead (no Spark job)?"""

from __future__ import annotations

from pysetl_dagster.automation.branching import decided_verdict
from pysetl_dagster.automation.conditions import (
    alternative,
    choose_branch,
    evaluate_condition,
    skipped_upstream,
)
from pysetl_dagster.execution.inputs import linked_manifests
from pysetl_dagster.execution.state import StepState
from pysetl_dagster.spark.labels import asset_scope
from pysetl_dagster.storage.caching import (
    CACHE_TAG,
    CacheDecision,
    cache_policy,
    compute_key,
    decide,
    factory_state,
    force_requested,
)
from pysetl_dagster.translation.graph import FactoryNode
from pysetl_dagster.translation.links import without_links
from pysetl_dagster.translation.specs import input_name


def gather_inputs(state: StepState) -> None:
    """The values the Factory gets: external inputs from the graph, upstream outputs as the
    IO manager loaded them."""
    translated, node = state.translated, state.node
    values = translated.external_values(node)
    for resolved in translated.graph.inputs[node]:
        if isinstance(resolved.source, FactoryNode):
            values[resolved.attribute] = state.loaded[input_name(translated, resolved.source)]
    state.values = values


def decide_skip(state: StepState) -> None:
    """Why the Factory does not run, if it does not: an input from a skipped Factory (Stage
    job), or its condition is false (a data condition is one Spark aggregate, labelled)."""
    skipped = skipped_upstream(state.values)
    if skipped:
        state.skip_reason = f"its input(s) {', '.join(skipped)} come from skipped Factories"
        return
    resolved = state.translated.conditions.get(state.node)
    if resolved is None:
        return
    verdict = decided_verdict(state.context.run.tags, state.key)  # a branching sensor's
    if verdict is None:
        with asset_scope(state.spark, state.run_id, state.asset, f"{state.node.name} condition"):
            verdict = evaluate_condition(
                resolved, tags=state.context.run.tags, config=state.config, values=state.values
            )
    if verdict.holds:
        state.context.log.info(
            f"Factory {state.node.name} (asset {state.asset}) runs: {verdict.reason}."
        )
        return
    state.skip_reason = f"condition false: {verdict.reason}"


def decide_branch(state: StepState) -> None:
    """What runs: the Factory itself, or the alternative its branch condition picks."""
    node = state.node
    state.run_node = node
    resolved = state.translated.branches.get(node)
    if resolved is None:
        return
    decided = decided_verdict(state.context.run.tags, state.key)  # a branching sensor's
    if decided is not None:
        verdict = decided
        chosen = alternative(node.factory, verdict.holds)
    else:
        with asset_scope(state.spark, state.run_id, state.asset, f"{node.name} branch condition"):
            chosen, verdict = choose_branch(
                node.factory,
                resolved,
                tags=state.context.run.tags,
                config=state.config,
                values=state.values,
            )
    state.branch_taken = f"{type(chosen).__name__} ({verdict.reason})"
    state.context.log.info(f"Branch {node.name} (asset {state.asset}) runs {state.branch_taken}.")
    state.run_node = FactoryNode(chosen, node.stage_index)


def decide_cache(state: StepState) -> None:
    """Whether a stored version can be reused: the cache key of what runs (the chosen
    alternative's code) against the stored versions' keys. Nothing when the storage does not
    cache."""
    storage, translated, node = state.storage, state.translated, state.node
    if storage is None or not storage.cache:
        return
    run_node = state.run_node or node
    upstream = {
        resolved.attribute: storage.loaded_manifest(
            state.loaded[input_name(translated, resolved.source)]
        )
        for resolved in translated.graph.inputs[node]
        if isinstance(resolved.source, FactoryNode)
    }
    externals = translated.external_values(node)
    upstream.update(linked_manifests(externals, storage))  # another pipeline's outputs
    plan = state.plan
    cache_key = compute_key(
        run_node.factory_type,
        config=state.config,
        instance_state=factory_state(run_node.factory),
        upstream=upstream,
        externals=without_links(externals),
        partition=state.partition,
        checks=[
            f"{c.name}|{c.severity}|{c.blocking}|{c.description}"
            for c in (plan.checks if plan is not None else ())
        ],
        content_hash=storage.input_fingerprint == "content",
    )
    tags = state.context.run.tags
    records = storage.store.cache_records(state.key, state.partition)
    invalidated = records[0].get("cache_invalidated_at") if records else None
    declared = translated.declarations[node]
    state.cache = decide(
        cache_key,
        cache_policy(declared.cache, declared.cache_ttl_seconds, storage.cache_ttl_seconds),
        records,
        forced=force_requested(tags, [state.asset, node.name]),
        disabled_by_run=tags.get(CACHE_TAG, "").strip().lower() == "off",
        invalidated_at=float(invalidated) if invalidated else None,
    )


def reusable(state: StepState) -> CacheDecision | None:
    """The cache decision when it reuses a stored version, else None."""
    return state.cache if state.cache is not None and state.cache.reuse is not None else None
