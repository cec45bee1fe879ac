"""Branching sensors: decide a pipeline's conditions *before* any run starts.

    review.branch_sensor(flags={"incremental": EnvVar("REVIEW_INCREMENTAL")})

Each tick evaluates the conditions the pipeline declares (`when_config`, `when_data`,
`when_external`, a `branch`'s `choose`, `variants`) and requests ONE run of exactly the
Factories whose conditions hold plus their dependents, or returns a `SkipReason` naming every
condition, what it read and its value. A false condition so costs no run, no process and no
JVM, and the decision is in the Automation tab (tick history) and on the run (tags
`pysetl/branch_taken`, `pysetl/condition.<asset>`). The step of a run the sensor launched reads
the decision from those tags instead of evaluating the condition again, and checks that it
reads the upstream versions the decision rests on (`pysetl/decided_on.<asset>`): one written
after the tick fails the step (execution/decide.py), and the next tick decides on it.

Why decisions are cheap:

- config conditions read the sensor's `flags` (values, `EnvVar`s or callables), the profile's
  `flags` section (per environment, through `build_definitions(profile=...)`) or the run
  tags `pysetl/<flag>` it sets, else the Factory's `Config` default;
- data conditions read the upstream's stored version's manifest: the aggregate of every
  `when_data` condition (and the aggregates a Factory declares in `recorded_aggregates`) is
  observed during the upstream's write (`DataFrame.observe`: no extra Spark job) and kept in
  the manifest, so the sensor decides with no Spark job at all. A version written before the
  condition existed is decided by ONE Spark aggregate on the stored version, on the session
  the pipeline's `pyspark` resource gives (classic, or Spark Connect: then the sensor's
  process starts no JVM), started only then and torn down at the tick's end;
- external decisions (`when_external`) call a function or an HTTP endpoint with a timeout.

A condition whose evaluation fails fails the tick with the Factory, the condition and the
error named: never a silent skip.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from dagster import (
    AssetKey,
    AssetObservation,
    DagsterError,
    DefaultSensorStatus,
    EnvVar,
    MetadataValue,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    build_resources,
    sensor,
)

from pysetl_dagster.automation.conditions import (
    BOTH,
    FLAG_TAG_PREFIX,
    Condition,
    ConditionInputs,
    ConfigCondition,
    DataCondition,
    ExternalCondition,
    Verdict,
    _All,
    _Any,
    _Not,
    alternative,
)
from pysetl_dagster.automation.target import AutomationTarget
from pysetl_dagster.errors import PySetlDefinitionError, PySetlFactoryError
from pysetl_dagster.metadata import MetadataKey, TagKey
from pysetl_dagster.spark.connect import lost_server_note
from pysetl_dagster.translation.graph import FactoryNode
from pysetl_dagster.translation.links import link_of
from pysetl_dagster.translation.specs import FactoryRef, TranslatedPipeline

RECORD_PREFIX = "__agg:"
"""Observed-aggregate names of recorded aggregates (`__agg:<name>`), stored in the manifest
under `aggregates`."""
MAX_TAG_VALUE = 500
TAG_SECTION_MAX = 63

Flag = Any
"""A flag's value for the sensor: a value, an `EnvVar`, or a callable of no argument."""


# -- aggregates recorded at write time ---------------------------------------------------------


AggregateSpec = str | Callable[[Any], Any]
"""A recorded aggregate: a SQL aggregate expression (`"max(amount)"`) or a function of the
output DataFrame returning one aggregate Column."""


def condition_aggregate_name(condition: DataCondition) -> str:
    """The name a data condition's aggregate is recorded under: its description and a hash of
    its predicate's code, so an edited predicate never reads a stale value."""
    code = getattr(condition.predicate, "__code__", None)
    body = repr((code.co_code, code.co_consts, code.co_names)) if code else repr(condition)
    return f"{condition.describe()}#{hashlib.sha256(body.encode()).hexdigest()[:8]}"


def _leaves(condition: Condition) -> list[Condition]:
    if isinstance(condition, _All | _Any):
        return [leaf for part in condition.parts for leaf in _leaves(part)]
    if isinstance(condition, _Not):
        return _leaves(condition.inner)
    return [condition]


def recorded_aggregates(translated: TranslatedPipeline, node: FactoryNode) -> dict[str, Any]:
    """The aggregates to observe while `node`'s output is written: what the Factory declares
    (`recorded_aggregates = {"name": "max(amount)"}`) and every data condition of the pipeline
    that reads this Factory, so a branching sensor decides from the manifest."""
    wanted: dict[str, Any] = {}
    declared = getattr(node.factory, "recorded_aggregates", None) or {}
    for name, spec in dict(declared).items():
        wanted[str(name)] = spec
    for resolved in [*translated.conditions.values(), *translated.branches.values()]:
        for leaf in _leaves(resolved.condition):
            if isinstance(leaf, DataCondition) and leaf.factory is node.factory_type:
                wanted[condition_aggregate_name(leaf)] = leaf.predicate
    return wanted


def record_exprs(specs: Mapping[str, AggregateSpec], output: Any, log: Any = None) -> list[Any]:
    """Columns for `DataFrame.observe`, named `__agg:<name>`. One Spark cannot analyse as an
    aggregate of this output is left out (logged): recording must never break the write."""
    from pyspark.sql import functions as F

    exprs = []
    for name, spec in specs.items():
        try:
            column = F.expr(spec) if isinstance(spec, str) else spec(output)
            # analysis only, no Spark job (`.schema` forces it on Spark Connect too): an
            # aggregate of this output? A bad one must not fail the write.
            output.agg(column).schema  # noqa: B018
            exprs.append(column.alias(RECORD_PREFIX + name))
        except Exception as exc:
            if log is not None:
                log.warning(f"Aggregate {name!r} is not recorded: {str(exc).splitlines()[0]}")
    return exprs


def json_value(value: Any) -> Any:
    """A recorded value as JSON keeps it (Decimal -> float, dates -> ISO text)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)


def recorded_values(observed: Mapping[str, Any]) -> dict[str, Any]:
    """The recorded aggregates among a write's observed values, for the manifest."""
    return {
        k[len(RECORD_PREFIX) :]: json_value(v)
        for k, v in observed.items()
        if k.startswith(RECORD_PREFIX)
    }


# -- decisions taken in the run: the tags the step reads -----------------------------------------


def compliant_tag(prefix: str, name: str) -> str:
    """`prefix` + `name` as a tag key Dagster accepts: after the namespace, one section of at
    most 63 characters of `[A-Za-z0-9_.-]` (a longer name is cut and suffixed with a hash)."""
    section = prefix.split("/", 1)[1] + re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    if len(section) > TAG_SECTION_MAX:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        section = section[: TAG_SECTION_MAX - 9] + "-" + digest
    return prefix.split("/", 1)[0] + "/" + section


def condition_tag(key: AssetKey) -> str:
    """The run tag carrying the sensor's decision on a Factory's condition."""
    return compliant_tag(TagKey.CONDITION_PREFIX, key.to_python_identifier())


def decided_on_tag(key: AssetKey) -> str:
    """The run tag naming the stored version of `key` a branching sensor decided on."""
    return compliant_tag(TagKey.DECIDED_ON_PREFIX, key.to_python_identifier())


def decided_verdict(tags: Mapping[str, str], key: AssetKey) -> Verdict | None:
    """The decision a branching sensor took for this asset before the run, if it did."""
    if TagKey.DECIDED_BY not in tags:
        return None
    value = tags.get(condition_tag(key))
    if value is None:
        return None
    verdict, _, reason = value.partition(": ")
    return Verdict(
        verdict == "true",
        f"decided by sensor {tags[TagKey.DECIDED_BY]} before the run: {reason or value}",
    )


# -- A/B rules -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ABRule:
    """How a sensor assigns variant labels to the runs it requests."""

    kind: Literal["alternate", "ratio", "hash"]
    ratio: float = 0.5
    """The share of runs (or partition keys) given the second variant."""

    def assign(self, labels: Sequence[str], count: int, key: str) -> tuple[str, str]:
        """The label for assignment number `count` (from 0) of unit `key`, and why."""
        first, second = labels[0], labels[1]
        if self.kind == "alternate":
            return labels[count % len(labels)], f"alternate, assignment #{count + 1}"
        if self.kind == "ratio":  # deterministic: b's share after n runs stays within 1 of n*r
            second_now = math.floor((count + 1) * self.ratio) > math.floor(count * self.ratio)
            chosen = second if second_now else first
            return chosen, f"ratio {self.ratio:g} to {second}, assignment #{count + 1}"
        digest = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        chosen = second if digest < self.ratio else first
        return chosen, f"hash of {key!r} = {digest:.3f} (< {self.ratio:g} -> {second})"


def alternate() -> ABRule:
    """Variants in turn: a, b, a, b, ..."""
    return ABRule("alternate")


def ratio(share: float) -> ABRule:
    """The second variant for `share` of the runs, spread evenly (deterministic)."""
    if not 0 <= share <= 1:
        raise PySetlDefinitionError(f"ratio({share}): the share must be between 0 and 1.")
    return ABRule("ratio", share)


def hash_of_partition(share: float = 0.5) -> ABRule:
    """The second variant for a stable `share` of partition keys (give the sensor a
    `partition_key`; without one the assignment number is hashed): the same key always gets
    the same variant."""
    if not 0 <= share <= 1:
        raise PySetlDefinitionError(f"hash_of_partition({share}): share must be in [0, 1].")
    return ABRule("hash", share)


# -- evaluating conditions outside a run ---------------------------------------------------------


@dataclass
class Leaf:
    """One elementary condition as the sensor saw it."""

    text: str
    value: Any
    source: str
    cost: Literal["config", "manifest", "spark", "external", "run"]
    flag: str | None = None
    """The config flag it read (an A/B flag's value is not part of the run key)."""


@dataclass
class Decision:
    """A Factory's condition (or branch) decided by the sensor."""

    node: FactoryNode
    key: AssetKey
    kind: Literal["condition", "branch"]
    holds: bool
    reason: str
    leaves: list[Leaf] = field(default_factory=list)
    deferred: bool = False
    """Left to the run: it reads a Factory this run recomputes."""

    @property
    def summary(self) -> str:
        if self.kind == "branch":
            chosen = alternative(self.node.factory, self.holds)
            return f"{self.node.name} -> {type(chosen).__name__}"
        return f"{self.node.name}: {'runs' if self.holds else 'does not run'}"


@dataclass
class TickEnv:
    """What one tick may look at; it starts Spark only when a decision needs it.

    The resources it builds stay set up until `close` (the end of the tick): a Spark Connect
    session is the tick's own, created on the server when a decision needs one aggregate and
    released there when the tick ends (a code server evaluates a sensor every 30 s for
    months: a session per tick left open would pile up on the server)."""

    pipeline: AutomationTarget
    context: SensorEvaluationContext
    flags: dict[str, Any]
    partition: str | None
    io_manager_key: str
    spark_jobs: int = 0
    _storage: Any = None
    _spark: Any = None
    _resources: ExitStack = field(default_factory=ExitStack)
    decided_on: dict[AssetKey, str] = field(default_factory=dict)
    """Asset -> the stored version a decision read or the run would read (the run's steps
    check that they read these)."""

    def storage(self) -> Any:
        if self._storage is None:
            self._storage = _resource(self.context, self.io_manager_key, self._resources)
        return self._storage

    def spark(self) -> Any:
        if self._spark is None:
            resource = _resource(self.context, "pyspark", self._resources)
            self._spark = resource.spark_session
        return self._spark

    def close(self) -> None:
        """Tear the resources down (a Connect session is released on its server)."""
        self._resources.close()


def _resource(context: SensorEvaluationContext, key: str, stack: ExitStack) -> Any:
    """A resource of the code location, built on demand and set up until `stack` closes (a
    sensor that needs no Spark starts none: Dagster would set up every required resource at
    each tick)."""
    repository = context.repository_def
    defs = repository.get_top_level_resources() if repository is not None else {}
    if key not in defs:
        raise PySetlDefinitionError(
            f"The branching sensor needs the resource {key!r}; pass it to build_definitions."
        )
    built = stack.enter_context(build_resources({key: defs[key]}, instance=context.instance))
    return getattr(built, key)


def resolve_flag(value: Flag) -> Any:
    """A flag's value now: an `EnvVar` is read where the sensor runs (the daemon), a callable
    is called, anything else is the value."""
    if isinstance(value, EnvVar):
        return value.get_value()
    if callable(value):
        return value()
    return value


def _config_default(node: FactoryNode, name: str) -> tuple[bool, Any]:
    """The Factory's own `Config` field `name` (its default), as the step would read it."""
    config = getattr(node.factory, "config", None)
    if config is not None and hasattr(config, name):
        return True, getattr(config, name)
    return False, None


def evaluate_leaf(
    condition: Condition, node: FactoryNode, env: TickEnv, rerun: set[type]
) -> tuple[Verdict, list[Leaf]]:
    """Evaluate one condition of `node` as the step would, from what the sensor can see."""
    if isinstance(condition, _All | _Any):
        verdicts = []
        leaves: list[Leaf] = []
        for part in condition.parts:
            verdict, seen = evaluate_leaf(part, node, env, rerun)
            verdicts.append(verdict)
            leaves += seen
        wanted = isinstance(condition, _Any)
        decisive = [v for v in verdicts if v.holds is wanted]
        holds = bool(decisive) if wanted else not decisive
        chosen = decisive[:1] if decisive else verdicts
        return Verdict(holds, "; ".join(v.reason for v in chosen)), leaves
    if isinstance(condition, _Not):
        verdict, leaves = evaluate_leaf(condition.inner, node, env, rerun)
        return Verdict(not verdict.holds, f"not ({verdict.reason})"), leaves
    if isinstance(condition, ConfigCondition):
        if condition.name in env.flags:
            value, where = env.flags[condition.name], f"sensor flag {condition.name}"
        else:
            found, value = _config_default(node, condition.name)
            where = f"config {condition.name} (default)" if found else "not set"
            if not found:
                value = condition.default
        tags = {} if value is None else {FLAG_TAG_PREFIX + condition.name: str(value)}
        verdict = condition.evaluate(ConditionInputs(tags, None, {}))
        reason = verdict.reason.split(": ", 1)[0] + f": {where} is {value!r}"
        leaf = Leaf(condition.describe(), value, where, "config", condition.name)
        return Verdict(verdict.holds, reason), [leaf]
    if isinstance(condition, DataCondition):
        return _decide_data(condition, env, rerun)
    if isinstance(condition, ExternalCondition):
        tags = {FLAG_TAG_PREFIX + k: str(v) for k, v in env.flags.items()}
        verdict = condition.evaluate(ConditionInputs(tags, None, {}))
        return verdict, [Leaf(condition.describe(), verdict.holds, condition.source, "external")]
    raise PySetlDefinitionError(
        f"{condition.describe()} cannot be decided by a sensor; decide it in the run instead."
    )


def _decide_data(
    condition: DataCondition, env: TickEnv, rerun: set[type]
) -> tuple[Verdict, list[Leaf]]:
    name = getattr(condition.factory, "__name__", repr(condition.factory))
    text = condition.describe()
    if condition.factory in rerun:
        reason = f"{text}: decided in the run ({name} runs first in it)"
        return Verdict(True, reason), [Leaf(text, None, "the run", "run")]
    translated = env.pipeline.translated
    upstream = translated.find_factories([condition.factory], f"Condition {text}")[0]
    key = translated.key_of(upstream)
    storage = env.storage()
    manifest = storage.store.current_manifest(key, env.partition)
    if manifest is None:
        reason = f"{text}: {name} has no stored version yet (materialize {key.to_user_string()})"
        return Verdict(False, reason), [Leaf(text, None, "no stored version", "manifest")]
    version = str(manifest["version"])
    env.decided_on[key] = version
    recorded = manifest.get("aggregates") or {}
    agg_name = condition_aggregate_name(condition)
    if agg_name in recorded:
        value = recorded[agg_name]
        where = f"recorded with {name} version {version}"
        cost: Literal["manifest", "spark"] = "manifest"
    else:  # on the resource's session (classic or Connect), started only now
        env.spark()
        df = storage.store.read_version(
            str(storage.store.asset_dir(key, env.partition) / version), manifest.get("schema")
        )
        row = df.agg(condition.predicate(df).alias("pysetl_condition")).first()
        env.spark_jobs += 1
        value = json_value(row[0] if row is not None else None)
        where = f"one Spark aggregate on {name} version {version}"
        cost = "spark"
    reason = f"{text}: {value!r} ({where})"
    return Verdict(bool(value), reason), [Leaf(text, value, f"{name}@{version}", cost)]


# -- the sensor --------------------------------------------------------------------------------


@dataclass
class Plan:
    """One tick's outcome before it becomes a RunRequest or a SkipReason."""

    decisions: list[Decision]
    selection: list[FactoryNode]
    flags: dict[str, Any]
    spark_jobs: int
    inputs: list[str] = field(default_factory=list)
    decided_on: dict[AssetKey, str] = field(default_factory=dict)
    """Asset -> the stored version the decisions and the run's reads rest on."""


def _dependents(translated: TranslatedPipeline, nodes: set[FactoryNode]) -> set[FactoryNode]:
    graph = translated.graph
    found = set(nodes)
    for node in graph.nodes:
        if any(r.source in found for r in graph.inputs[node]):
            found.add(node)
    return found


def _cause(exc: BaseException, env: TickEnv) -> str:
    """What went wrong, in words: the error a resource raised rather than Dagster's wrapper
    around it ("Error executing resource_fn ..."), and, when the Spark Connect server went
    away under the aggregate, that it did and how to start it again."""
    cause: BaseException = exc
    while isinstance(cause, DagsterError) and cause.__cause__ is not None:
        cause = cause.__cause__
    text = f"{type(cause).__name__}: {str(cause).rstrip('.')}"
    note = lost_server_note(env._spark, cause) if env._spark is not None else None
    if note is None or "Spark Connect server at" in text:  # said already
        return text
    return f"{text} ({note.rstrip('.')})"


def decide_tick(
    pipeline: AutomationTarget,
    env: TickEnv,
    targets: Sequence[FactoryNode],
) -> Plan:
    """Decide every condition and branch among `targets` (in run order) and the run's
    selection: the Factories whose conditions hold, the branches, and their dependents. A
    Factory that reads one that does not run does not run either (as Dagster would skip it)."""
    translated = pipeline.translated
    decisions: list[Decision] = []
    chosen: set[FactoryNode] = set()
    excluded: set[FactoryNode] = set()
    for node in targets:
        if node in _dependents(translated, excluded):
            continue  # reads a Factory that does not run
        rerun = {n.factory_type for n in _dependents(translated, chosen)}
        key = translated.key_of(node)
        for kind, resolved in (
            ("condition", translated.conditions.get(node)),
            ("branch", translated.branches.get(node)),
        ):
            if resolved is None:
                continue
            try:
                verdict, leaves = evaluate_leaf(resolved.condition, node, env, rerun)
            except Exception as exc:
                raise PySetlFactoryError(
                    f"Branching sensor of pipeline {pipeline.name!r}: Factory {node.name} "
                    f"(asset {key.to_user_string()}): evaluating its {kind} "
                    f"{resolved.condition.describe()} failed: {_cause(exc, env)}. "
                    "Fix the condition (or what it reads); the tick fails rather than skip."
                ) from exc
            deferred = any(leaf.cost == "run" for leaf in leaves)
            decisions.append(
                Decision(node, key, kind, verdict.holds, verdict.reason, leaves, deferred)  # type: ignore[arg-type]
            )
            if kind == "condition" and not verdict.holds:
                excluded.add(node)
        if node not in excluded:
            chosen.add(node)
    dropped = _dependents(translated, excluded)
    running = _dependents(translated, chosen) - dropped
    selection = [n for n in translated.graph.nodes if n in running]
    return Plan(decisions, selection, dict(env.flags), env.spark_jobs)


def input_versions(pipeline: AutomationTarget, env: TickEnv, plan: Plan) -> list[str]:
    """The stored versions the run would read (upstream Factories outside the selection and
    other pipelines' assets): a new one is a new run key."""
    translated = pipeline.translated
    selected = set(plan.selection)
    keys: set[AssetKey] = set()
    for node in plan.selection:
        for resolved in translated.graph.inputs[node]:
            source = resolved.source
            if isinstance(source, FactoryNode):
                if source not in selected:
                    keys.add(translated.key_of(source))
            elif (link := link_of(source)) is not None:
                keys.add(link.key)
    found = []
    for key in sorted(keys, key=lambda k: k.to_user_string()):
        manifest = env.storage().store.current_manifest(key, env.partition)
        version = (manifest or {}).get("version")
        found.append(f"{key.to_user_string()}@{version}")
        if version is not None:
            env.decided_on[key] = str(version)
    return found


def _conditioned(translated: TranslatedPipeline) -> list[FactoryNode]:
    return [
        n for n in translated.graph.nodes if n in translated.conditions or n in translated.branches
    ]


def _variant(node: FactoryNode) -> str | None:
    label = getattr(node.factory, "variant", None)
    return None if label is None else str(label)


def _variant_groups(translated: TranslatedPipeline) -> dict[str, list[str]]:
    """flag -> the variant labels `variants(flag, ...)` declared, in declaration order."""
    groups: dict[str, list[str]] = {}
    for node in translated.graph.nodes:
        label = _variant(node)
        resolved = translated.conditions.get(node)
        if label is None or resolved is None:
            continue
        for leaf in _leaves(resolved.condition):
            if isinstance(leaf, ConfigCondition) and leaf.equals == label:
                groups.setdefault(leaf.name, [])
                if label not in groups[leaf.name]:
                    groups[leaf.name].append(label)
    return groups


def _tag_value(text: str) -> str:
    return text if len(text) <= MAX_TAG_VALUE else text[: MAX_TAG_VALUE - 1] + "…"


def skip_text(plan: Plan) -> str:
    """Every condition, what it read and its value, in words."""
    lines = [
        f"{d.node.name} ({d.kind}) does not hold: {d.reason}"
        if not d.holds
        else f"{d.node.name} ({d.kind}) holds: {d.reason}"
        for d in plan.decisions
    ]
    return "No Factory's condition holds, so no run was started. " + " | ".join(lines)


def run_key_of(pipeline: str, plan: Plan, partition: str | None, ab: Sequence[str]) -> str:
    """What the decision rests on: the conditions' inputs and values, the flags (not the A/B
    assignment: it follows from the rest) and the stored versions the run would read."""
    inputs = sorted(
        {
            f"{leaf.text}={leaf.source}={leaf.value!r}"
            for d in plan.decisions
            for leaf in d.leaves
            if leaf.flag not in ab
        }
    )
    body = json.dumps(
        {
            "pipeline": pipeline,
            "partition": partition,
            "conditions": inputs,
            "reads": plan.inputs,
            "flags": {k: str(v) for k, v in sorted(plan.flags.items()) if k not in ab},
        },
        sort_keys=True,
    )
    return hashlib.sha256(body.encode()).hexdigest()[:32]


def run_tags(sensor_name: str, plan: Plan, ab_reasons: Mapping[str, str]) -> dict[str, str]:
    """The decision on the run: what was chosen, each condition's verdict and inputs, flags."""
    taken = [d.summary for d in plan.decisions if d.holds or d.kind == "branch"]
    tags = {
        TagKey.SENSOR: sensor_name,
        TagKey.DECIDED_BY: sensor_name,
        TagKey.BRANCH_TAKEN: _tag_value("; ".join(taken) or "none"),
    }
    for d in plan.decisions:
        if d.deferred:
            continue
        tags[condition_tag(d.key)] = _tag_value(f"{'true' if d.holds else 'false'}: {d.reason}")
    for name, value in plan.flags.items():
        if value is not None:
            tags[FLAG_TAG_PREFIX + name] = (
                str(value).lower() if isinstance(value, bool) else str(value)
            )
    for flag, reason in ab_reasons.items():
        tags[compliant_tag(TagKey.AB_PREFIX, flag)] = _tag_value(reason)
    for key, version in plan.decided_on.items():
        tags[decided_on_tag(key)] = version
    return tags


def variant_comparison(
    context: SensorEvaluationContext, keys: Mapping[str, AssetKey]
) -> MetadataValue | None:
    """A Markdown table of each variant's latest materialization metrics, side by side."""
    rows: dict[str, dict[str, str]] = {}
    for label, key in keys.items():
        event = context.instance.get_latest_materialization_event(key)
        materialization = event.asset_materialization if event is not None else None
        if materialization is None:
            continue
        run = context.instance.get_run_by_id(event.run_id) if event is not None else None
        assigned = [
            v for k, v in (run.tags if run else {}).items() if k.startswith(TagKey.AB_PREFIX)
        ]
        rows.setdefault("run", {})[label] = event.run_id[:8] if event is not None else ""
        rows.setdefault("assigned", {})[label] = assigned[0] if assigned else "by hand"
        for name, value in materialization.metadata.items():
            raw = getattr(value, "value", value)
            if isinstance(raw, int | float) and not isinstance(raw, bool):
                rows.setdefault(name, {})[label] = f"{raw:g}"
    if not rows:
        return None
    labels = list(keys)
    lines = ["| metric | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for name, values in rows.items():
        lines.append(f"| {name} | " + " | ".join(values.get(lb, "") for lb in labels) + " |")
    return MetadataValue.md("\n".join(lines))


def branch_sensor(
    pipeline: AutomationTarget,
    *,
    factories: Sequence[FactoryRef] | None = None,
    flags: Mapping[str, Flag] | None = None,
    ab: Mapping[str, ABRule] | None = None,
    partition_key: Callable[[SensorEvaluationContext], str | None] | None = None,
    tags: Mapping[str, str] | None = None,
    name: str | None = None,
    io_manager_key: str = "io_manager",
    minimum_interval_seconds: int = 30,
    default_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED,
) -> SensorDefinition:
    """A sensor deciding the pipeline's conditions before any run starts (module docstring).

    Args:
        factories: the conditioned Factories (or branches) it decides (default: all of them).
        flags: values of config flags (`when_config(name)`): a value, an `EnvVar` or a
            callable; each becomes the run tag `pysetl/<name>` too. A flag neither here nor
            in `tags` (as `pysetl/<name>`) takes the Factory's `Config` default.
        ab: flag of a `variants(flag, ...)` -> its assignment rule (`alternate()`,
            `ratio(0.2)`, `hash_of_partition()`); the assignment is the flag's value.
        partition_key: the partition the run materializes (and whose manifests it reads).
        tags: extra tags on every run it requests.
    """
    translated = pipeline.translated
    sensor_name = name or f"{pipeline.name}_branching"
    conditioned = _conditioned(translated)
    if factories is not None:
        wanted = set(translated.find_factories(factories, f"Sensor {sensor_name!r}"))
        conditioned = [n for n in conditioned if n in wanted]
    if not conditioned:
        raise PySetlDefinitionError(
            f"Sensor {sensor_name!r}: pipeline {pipeline.name!r} has no conditioned Factory or "
            "branch to decide. Declare `condition = when_config(...)` / `when_data(...)` on a "
            "Factory, a branch(...) or variants(...) first."
        )
    tag_flags = {
        k[len(FLAG_TAG_PREFIX) :]: v
        for k, v in (tags or {}).items()
        if k.startswith(FLAG_TAG_PREFIX) and k.count("/") == 1
    }
    groups = _variant_groups(translated)
    rules = dict(ab or {})
    for flag in rules:
        if flag not in groups:
            raise PySetlDefinitionError(
                f"Sensor {sensor_name!r}: ab={{{flag!r}: ...}} names no variants(...) of "
                f"pipeline {pipeline.name!r} (variant flags: {', '.join(groups) or 'none'})."
            )
    spec = BranchingSensor(
        pipeline=pipeline,
        name=sensor_name,
        conditioned=conditioned,
        flags={**tag_flags, **dict(flags or {})},
        rules=rules,
        labels={flag: groups[flag] for flag in rules},
        variant_keys={
            flag: {
                str(_variant(n)): translated.key_of(n)
                for n in translated.graph.nodes
                if _variant(n) in groups[flag]
            }
            for flag in rules
        },
        partition_key=partition_key,
        tags=dict(tags or {}),
        io_manager_key=io_manager_key,
    )
    described = ", ".join(
        f"{n.name}: {(translated.conditions.get(n) or translated.branches[n]).condition.describe()}"
        for n in conditioned
    )

    @sensor(
        name=sensor_name,
        job=pipeline.asset_job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=f"Decides pipeline {pipeline.name!r}'s conditions before any run starts "
        f"({described}) and runs only the Factories whose conditions hold.",
    )
    def _branching(context: SensorEvaluationContext) -> SensorResult:
        return spec.tick(context)

    return _branching


@dataclass(frozen=True)
class BranchingSensor:
    """What a branching sensor was declared with; `tick` is one evaluation."""

    pipeline: AutomationTarget
    name: str
    conditioned: list[FactoryNode]
    flags: dict[str, Flag]
    """Flag -> value, `EnvVar` or callable (the sensor's `pysetl/<flag>` tags, then `flags`)."""
    rules: dict[str, ABRule]
    labels: dict[str, list[str]]
    """A/B flag -> its variants' labels, in declaration order."""
    variant_keys: dict[str, dict[str, AssetKey]]
    partition_key: Callable[[SensorEvaluationContext], str | None] | None
    tags: dict[str, str]
    io_manager_key: str

    def tick(self, context: SensorEvaluationContext) -> SensorResult:
        """Decide, then request one run or say why none (the cursor keeps the last run key,
        the A/B counters and the last comparison tables)."""
        started = time.perf_counter()
        cursor: dict[str, Any] = json.loads(context.cursor) if context.cursor else {}
        partition = self.partition_key(context) if self.partition_key is not None else None
        # the profile's flags (set by build_definitions), then the sensor's own tags and flags
        declared = {**dict(getattr(self.pipeline, "profile_flags", None) or {}), **self.flags}
        values = {k: resolve_flag(v) for k, v in declared.items()}
        counts: dict[str, int] = cursor.get("ab", {})
        ab_reasons = self._assign(values, counts, partition)
        env = TickEnv(self.pipeline, context, values, partition, self.io_manager_key)
        try:
            plan = decide_tick(self.pipeline, env, self.conditioned)
            plan.spark_jobs = env.spark_jobs
            if plan.selection:
                plan.inputs = input_versions(self.pipeline, env, plan)
        finally:
            env.close()
        plan.decided_on = dict(env.decided_on)
        decided = "; ".join(f"{d.summary} ({d.reason})" for d in plan.decisions)
        context.log.info(
            f"{len(plan.decisions)} decision(s) in {time.perf_counter() - started:.3f} s, "
            f"{plan.spark_jobs} Spark job(s): {decided}"
        )
        events = self._comparisons(context, cursor)

        def skip(reason: str) -> SensorResult:
            return SensorResult(
                skip_reason=SkipReason(reason),
                cursor=json.dumps(cursor, sort_keys=True),
                asset_events=events,
            )

        if not plan.selection:
            return skip(skip_text(plan))
        missing = [found.split("@")[0] for found in plan.inputs if found.endswith("@None")]
        if missing:
            return skip(
                f"The run would read {', '.join(missing)}, which has no stored version yet: "
                f"materialize it first. {decided}"
            )
        run_key = run_key_of(self.pipeline.name, plan, partition, list(self.rules))
        if run_key == cursor.get("last"):
            return skip(f"Nothing changed since the last run this sensor requested: {decided}")
        cursor["last"] = run_key
        cursor["ab"] = {flag: int(counts.get(flag, 0)) + 1 for flag in self.rules}
        request = RunRequest(
            run_key=run_key,
            asset_selection=[self.pipeline.translated.key_of(n) for n in plan.selection],
            partition_key=partition,
            tags={**run_tags(self.name, plan, ab_reasons), **self.tags},
        )
        return SensorResult(
            run_requests=[request], cursor=json.dumps(cursor, sort_keys=True), asset_events=events
        )

    def _assign(
        self, values: dict[str, Any], counts: Mapping[str, int], partition: str | None
    ) -> dict[str, str]:
        """Set each A/B flag to the label its rule gives this run; flag -> why."""
        reasons = {}
        for flag, rule in self.rules.items():  # the counter moves only when a run is requested
            count = int(counts.get(flag, 0))
            label, why = rule.assign(self.labels[flag], count, partition or f"assignment {count}")
            values[flag] = label
            reasons[flag] = f"{label} by {why}"
        return reasons

    def _comparisons(
        self, context: SensorEvaluationContext, cursor: dict[str, Any]
    ) -> list[AssetObservation]:
        """The variants' metrics side by side on each variant's asset, when they changed."""
        events = []
        for flag, keys in self.variant_keys.items():
            table = variant_comparison(context, keys)
            if table is not None and table.value != cursor.get("table", {}).get(flag):
                cursor.setdefault("table", {})[flag] = table.value
                events += [
                    AssetObservation(asset_key=key, metadata={MetadataKey.AB_COMPARISON: table})
                    for key in keys.values()
                ]
        return events


__all__ = [
    "BOTH",
    "ABRule",
    "BranchingSensor",
    "alternate",
    "branch_sensor",
    "condition_aggregate_name",
    "decided_on_tag",
    "decided_verdict",
    "hash_of_partition",
    "ratio",
    "record_exprs",
    "recorded_aggregates",
    "recorded_values",
]
