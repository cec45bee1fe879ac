"""Phase 1 of the step, decide: does the Factory run, which alternative, and can a stored
version be reused instead (no Spark job)?"""

from __future__ import annotations

from dagster import AssetKey

from pysetl_dagster.automation.branching import decided_on_tag, decided_verdict
from pysetl_dagster.automation.conditions import (
    alternative,
    choose_branch,
    evaluate_condition,
    skipped_upstream,
)
from pysetl_dagster.errors import PySetlFactoryError
from pysetl_dagster.execution.inputs import linked_manifests
from pysetl_dagster.execution.state import StepState
from pysetl_dagster.metadata import TagKey
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
from pysetl_dagster.translation.links import link_of, without_links
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


def check_decided_versions(state: StepState) -> None:
    """A run a branching sensor requested reads the stored versions the sensor decided on.

    The sensor decides on the upstream versions stored at its tick (tags
    `pysetl/decided_on.<asset>`); a newer version written between the tick and this step may
    not satisfy the same conditions, so the step fails naming both versions rather than run
    a branch decided for other data. The sensor's next tick decides on the new version."""
    tags = state.context.run.tags
    sensor = tags.get(TagKey.DECIDED_BY)
    storage = state.storage
    if sensor is None or storage is None:
        return
    for key, version in _versions_read(state).items():
        decided = tags.get(decided_on_tag(key))
        if decided is None or version == decided:
            continue
        name = key.to_user_string()
        raise PySetlFactoryError(
            f"Factory {state.node.name} (asset {state.asset}): branching sensor {sensor} "
            f"decided this run on {name} version {decided}, but this step reads {name} "
            f"version {version} (written after the sensor's tick), for which the decision may "
            "not hold, so this step fails and writes nothing. The sensor's next tick "
            f"decides on version {version} and requests the run it needs; to run on it "
            "regardless, launch the job by hand (its steps then decide for themselves)."
        )


def _versions_read(state: StepState) -> dict[AssetKey, str | None]:
    """Asset -> the stored version this step reads of it: each upstream input (the version
    the IO manager loaded), each linked input, and what its data conditions read (current)."""
    storage, translated, node = state.storage, state.translated, state.node
    assert storage is not None
    found: dict[AssetKey, str | None] = {}

    def current(key: AssetKey, partition: str | None) -> str | None:
        manifest = storage.store.current_manifest(key, partition)
        return None if manifest is None else str(manifest["version"])

    for resolved in translated.graph.inputs[node]:
        source = resolved.source
        if isinstance(source, FactoryNode):
            key = translated.key_of(source)
            value = state.loaded.get(input_name(translated, source))
            manifest = storage.loaded_manifest(value) if value is not None else None
            found[key] = (
                str(manifest["version"]) if manifest is not None else current(key, state.partition)
            )
        elif (link := link_of(source)) is not None:
            found[link.key] = current(link.key, state.partition)  # as the sensor read it
    for decided in (translated.conditions.get(node), translated.branches.get(node)):
        for factory in decided.condition.factories() if decided is not None else ():
            upstream = translated.find_factories([factory], f"Factory {node.name}")[0]
            key = translated.key_of(upstream)
            found.setdefault(key, current(key, state.partition))
    return found


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
