"""Conditions: a Factory runs only when its condition holds, else it is *skipped* (never failed).

A Factory declares its condition next to its code:

    class FullReport(Factory[DataSet[Report]]):
        condition = when_config("full_refresh")                     # a run flag
    class Alerts(Factory[DataSet[Alert]]):
        condition = when_data(CleanOrders, lambda df: F.count(F.lit(1)) > 0)   # on data

(or a translator returns it from `PySetlTranslator.get_condition(data)`). `when_config` reads
the Factory's own `Config` field of that name if it has one, else the run tag `pysetl/<name>`
(both can be set in the Launchpad: the config editor, or "Edit tags"). `when_data` runs ONE Spark
aggregate over the upstream output (`df.agg(expr).first()[0]`): no row is collected.

When false, the step logs why, records an `AssetObservation` with `pysetl/skipped`, and yields
no output:
- asset job: the Factory's output is optional, so Dagster marks it not materialized and skips
  every downstream step (`STEP_SKIPPED`); the run succeeds.
- Stage job: one op runs several Factories, and an un-yielded output would skip the *whole*
  downstream Stage op (also its Factories that do not depend on the skipped one). So the Stage
  op yields `SKIPPED`, a marker the IO manager does not store but remembers for this run (in
  process: the project runs in-process), and hands to consumers; a Factory that receives it is
  skipped in turn. Stage ops themselves succeed.

Branches (`branch`) and A/B variants (`variants`) are built on the same mechanism.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pysetl.workflow import Delivery, Factory, Stage
from pysetl.workflow.delivery_type import DeliveryType
from pyspark.sql import Column, DataFrame

from pysetl_dagster.errors import PySetlDefinitionError
from pysetl_dagster.metadata import MetadataKey

FLAG_TAG_PREFIX = "pysetl/"
TRUE_WORDS = frozenset({"1", "true", "yes", "on", "y", "t"})


class _Skipped:
    """The value a Stage op yields for a skipped Factory (never stored)."""

    _instance: _Skipped | None = None

    def __new__(cls) -> _Skipped:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "SKIPPED"

    def __reduce__(self) -> str:  # a copy (pickle, deepcopy) is the same marker
        return "SKIPPED"


SKIPPED = _Skipped()


def is_skipped(value: Any) -> bool:
    return isinstance(value, _Skipped)


@dataclass(frozen=True)
class Verdict:
    """A condition's answer, with the reason shown in the UI."""

    holds: bool
    reason: str


@dataclass
class ConditionInputs:
    """What a condition may look at when the step evaluates it."""

    tags: Mapping[str, str]
    config: Any
    upstream: Mapping[type, Any]
    """Upstream Factory type -> its loaded output (a DataFrame for Spark outputs)."""


class Condition:
    """Something that decides, before a Factory runs, whether it runs. Combine with `&`, `|`
    and `~`."""

    def factories(self) -> tuple[type, ...]:
        """The Factories whose output it reads (checked at load time)."""
        return ()

    def describe(self) -> str:
        raise NotImplementedError

    def evaluate(self, inputs: ConditionInputs) -> Verdict:
        raise NotImplementedError

    def __and__(self, other: Condition) -> Condition:
        return _All((self, other))

    def __or__(self, other: Condition) -> Condition:
        return _Any((self, other))

    def __invert__(self) -> Condition:
        return _Not(self)

    def __repr__(self) -> str:
        return self.describe()


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in TRUE_WORDS
    return bool(value)


@dataclass(frozen=True, repr=False)
class ConfigCondition(Condition):
    """A run flag or value: the Factory's Config field `name`, else the run tag
    `pysetl/<name>`."""

    name: str
    equals: Any = True
    default: Any = None

    def describe(self) -> str:
        wanted = "" if self.equals is True else f" == {self.equals!r}"
        return f"when_config({self.name!r}){wanted}"

    def lookup(self, inputs: ConditionInputs) -> tuple[Any, str]:
        if inputs.config is not None and hasattr(inputs.config, self.name):
            return getattr(inputs.config, self.name), f"config {self.name}"
        tag = FLAG_TAG_PREFIX + self.name
        if tag in inputs.tags:
            return inputs.tags[tag], f"run tag {tag}"
        return self.default, f"run tag {tag} (not set, default {self.default!r})"

    def evaluate(self, inputs: ConditionInputs) -> Verdict:
        value, where = self.lookup(inputs)
        if self.equals is True:
            holds = _as_bool(value)
        elif isinstance(value, str) and not isinstance(self.equals, str):
            holds = value == str(self.equals)
        else:
            holds = value == self.equals
        return Verdict(holds, f"{self.describe()}: {where} is {value!r}")


@dataclass(frozen=True, repr=False)
class DataCondition(Condition):
    """A predicate over an upstream Factory's output, as one Spark aggregate."""

    factory: type
    predicate: Callable[[DataFrame], Column]
    label: str | None = None

    def factories(self) -> tuple[type, ...]:
        return (self.factory,)

    def describe(self) -> str:
        name = getattr(self.factory, "__name__", repr(self.factory))
        return f"when_data({name}{', ' + self.label if self.label else ''})"

    def evaluate(self, inputs: ConditionInputs) -> Verdict:
        value = inputs.upstream.get(self.factory)
        name = getattr(self.factory, "__name__", repr(self.factory))
        if is_skipped(value):
            return Verdict(False, f"{self.describe()}: {name} was skipped")
        if not isinstance(value, DataFrame):
            raise TypeError(
                f"{self.describe()} needs a Spark DataFrame from {name}, got {type(value)!r}"
            )
        expr = self.predicate(value)
        row = value.agg(expr.alias("pysetl_condition")).first()  # one aggregate, no rows
        result = row[0] if row is not None else None
        return Verdict(bool(result), f"{self.describe()}: the aggregate over {name} is {result!r}")


ExternalAnswer = bool | tuple[bool, str] | Mapping[str, Any]
"""What an external decision returns: a bool, (bool, reason) or {"holds": bool, "reason": str}."""


@dataclass(frozen=True, repr=False)
class ExternalCondition(Condition):
    """A decision taken outside the pipeline: a function, or an HTTP endpoint answering a
    POSTed JSON request, within `timeout_seconds` (a late answer is an error, never a skip)."""

    name: str
    decide: Callable[[dict[str, Any]], ExternalAnswer] | None = None
    url: Any = None
    """A URL, or an `EnvVar` naming the variable holding it (read when evaluated)."""
    headers: Mapping[str, Any] = field(default_factory=dict)
    """Request headers; values may be `EnvVar`s (secrets stay out of code and UI)."""
    timeout_seconds: float = 5.0

    def describe(self) -> str:
        return f"when_external({self.name!r})"

    @property
    def source(self) -> str:
        if self.decide is not None:
            return f"function {getattr(self.decide, '__name__', 'decide')}"
        return f"endpoint on {_host_of(_env_value(self.url))}"

    def evaluate(self, inputs: ConditionInputs) -> Verdict:
        request = {
            "condition": self.name,
            "flags": {
                k[len(FLAG_TAG_PREFIX) :]: v
                for k, v in inputs.tags.items()
                if k.startswith(FLAG_TAG_PREFIX) and k.count("/") == 1
            },
        }
        if self.decide is not None:
            answer = _call_with_timeout(self.decide, request, self.timeout_seconds)
        else:
            answer = _post_json(
                _env_value(self.url),
                request,
                {k: _env_value(v) for k, v in self.headers.items()},
                self.timeout_seconds,
            )
        holds, said = _answer(answer, self.describe())
        return Verdict(holds, f"{self.describe()}: {self.source} answered {holds}{said}")


def _env_value(value: Any) -> str:
    from dagster import EnvVar

    if isinstance(value, EnvVar):
        found = value.get_value()
        if not found:
            raise ValueError(f"environment variable {value.env_var_name} is not set")
        return str(found)
    return str(value)


def _host_of(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.hostname or '?'}" + (f":{parts.port}" if parts.port else "")


def _answer(answer: Any, what: str) -> tuple[bool, str]:
    if isinstance(answer, bool):
        return answer, ""
    if isinstance(answer, tuple) and len(answer) == 2:
        return bool(answer[0]), f" ({answer[1]})"
    if isinstance(answer, Mapping) and isinstance(answer.get("holds"), bool):
        reason = answer.get("reason")
        return bool(answer["holds"]), f" ({reason})" if reason else ""
    raise ValueError(
        f"{what} answered {answer!r}; answer true/false, (bool, reason) or "
        '{"holds": bool, "reason": "..."}'
    )


def _call_with_timeout(fn: Callable[..., Any], arg: Any, timeout: float) -> Any:
    import concurrent.futures

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="pysetl-decide")
    try:
        future = pool.submit(fn, arg)
        try:
            return future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"no answer within {timeout:g} s") from None
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _post_json(url: str, payload: Any, headers: Mapping[str, str], timeout: float) -> Any:
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        url,
        data=json.dumps(payload, default=str).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "pysetl-dagster", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read().decode() or "null")
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
        raise RuntimeError(f"the decision endpoint on {_host_of(url)} failed: {exc}") from exc


@dataclass(frozen=True, repr=False)
class _All(Condition):
    parts: tuple[Condition, ...]

    def factories(self) -> tuple[type, ...]:
        return tuple(f for p in self.parts for f in p.factories())

    def describe(self) -> str:
        return "(" + " & ".join(p.describe() for p in self.parts) + ")"

    def evaluate(self, inputs: ConditionInputs) -> Verdict:
        reasons = []
        for part in self.parts:
            verdict = part.evaluate(inputs)
            reasons.append(verdict.reason)
            if not verdict.holds:
                return Verdict(False, verdict.reason)
        return Verdict(True, "; ".join(reasons))


@dataclass(frozen=True, repr=False)
class _Any(Condition):
    parts: tuple[Condition, ...]

    def factories(self) -> tuple[type, ...]:
        return tuple(f for p in self.parts for f in p.factories())

    def describe(self) -> str:
        return "(" + " | ".join(p.describe() for p in self.parts) + ")"

    def evaluate(self, inputs: ConditionInputs) -> Verdict:
        reasons = []
        for part in self.parts:
            verdict = part.evaluate(inputs)
            reasons.append(verdict.reason)
            if verdict.holds:
                return Verdict(True, verdict.reason)
        return Verdict(False, "; ".join(reasons))


@dataclass(frozen=True, repr=False)
class _Not(Condition):
    inner: Condition

    def factories(self) -> tuple[type, ...]:
        return self.inner.factories()

    def describe(self) -> str:
        return f"~{self.inner.describe()}"

    def evaluate(self, inputs: ConditionInputs) -> Verdict:
        verdict = self.inner.evaluate(inputs)
        return Verdict(not verdict.holds, f"not ({verdict.reason})")


def when_config(name: str, equals: Any = True, *, default: Any = None) -> Condition:
    """Holds when the flag `name` is true (or equals `equals`): the Factory's Config field
    `name`, else the run tag `pysetl/<name>` (set it in the Launchpad, a schedule or a sensor).

    Args:
        name: the flag: a Config field of the Factory, else the run tag `pysetl/<name>`.
        equals: the value the flag must have (default: any true value).
        default: the flag's value when neither the Config nor the run sets it.
    """
    return ConfigCondition(name, equals, default)


def when_data(
    factory: type, predicate: Callable[[DataFrame], Column], *, label: str | None = None
) -> Condition:
    """Holds when `predicate(df)` (a Spark Column aggregate, e.g. `F.count(F.lit(1)) > 0`) is
    true over the output of the upstream Factory `factory`, which this Factory must consume.

    Args:
        factory: the upstream Factory class whose output is tested; this Factory must consume it.
        predicate: builds one aggregate Column from that output's DataFrame.
        label: how the condition is described in logs and metadata (default: the predicate).
    """
    return DataCondition(factory, predicate, label)


def when_external(
    name: str,
    decide: Callable[[dict[str, Any]], ExternalAnswer] | None = None,
    *,
    url: Any = None,
    headers: Mapping[str, Any] | None = None,
    timeout_seconds: float = 5.0,
) -> Condition:
    """Holds when an external decision service says so: `decide(request)` (a function) or
    an HTTP endpoint `url` that receives the request as POSTed JSON. The request is
    `{"condition": name, "flags": {...}}`; the answer is true/false, (bool, reason) or
    `{"holds": bool, "reason": "..."}`. No answer within `timeout_seconds` is an error.

    Args:
        name: the decision's name (in logs, tags and skip reasons).
        decide: a function of the request.
        url: the endpoint, or `EnvVar("NAME")` (read when evaluated).
        headers: request headers; `EnvVar` values for secrets (e.g. an Authorization token).
        timeout_seconds: how long to wait for the answer.
    """
    if (decide is None) == (url is None):
        raise PySetlDefinitionError(
            f"when_external({name!r}): give exactly one of `decide` (a function) or `url`."
        )
    return ExternalCondition(name, decide, url, dict(headers or {}), timeout_seconds)


def stage_condition(stage: Stage, condition: Condition) -> Stage:
    """A condition on a whole Stage: every Factory of it carries it (and-ed with its own).
    A data condition must then name a Factory each of them consumes (checked at load time).

    Args:
        stage: the PySetl Stage whose Factories all get the condition.
        condition: a `when_config(...)` / `when_data(...)` condition (combinable with & | ~).
    """
    for factory in stage.factories:
        existing = getattr(factory, "condition", None)
        factory.condition = condition if existing is None else existing & condition  # type: ignore[attr-defined]
    return stage


# -- resolution at load time ------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedCondition:
    """A Factory's condition, checked against the pipeline: the Delivery attribute that
    carries each Factory the condition reads."""

    condition: Condition
    attributes: dict[type, str] = field(default_factory=dict)


def resolve_condition(
    condition: Any,
    factory_name: str,
    pipeline_name: str,
    pipeline_factories: Sequence[type],
    inputs: Mapping[type, str],
) -> ResolvedCondition:
    """Check the condition names Factories this Factory consumes; a load-time error otherwise.

    Args:
        inputs: the types of the Factories this Factory consumes -> the Delivery attribute.
    """
    if not isinstance(condition, Condition):
        raise PySetlDefinitionError(
            f"Factory {factory_name}: its condition {condition!r} is not a Condition. Use "
            "when_config('flag') or when_data(UpstreamFactory, lambda df: F.count(F.lit(1)) > 0)."
        )
    attributes: dict[type, str] = {}
    for factory in condition.factories():
        name = getattr(factory, "__name__", repr(factory))
        if factory not in pipeline_factories:
            raise PySetlDefinitionError(
                f"Factory {factory_name}: its condition {condition.describe()} reads Factory "
                f"{name}, which is not in pipeline {pipeline_name!r}. Add {name} to the "
                "pipeline, or name one of the Factories this Factory consumes."
            )
        if factory not in inputs:
            consumed = ", ".join(sorted(f.__name__ for f in inputs)) or "none"
            raise PySetlDefinitionError(
                f"Factory {factory_name}: its condition {condition.describe()} reads Factory "
                f"{name}, which {factory_name} does not consume (it consumes: {consumed}). "
                f"Add a Delivery of {name}'s output to {factory_name}, or name one it consumes."
            )
        attributes[factory] = inputs[factory]
    return ResolvedCondition(condition, attributes)


def evaluate_condition(
    resolved: ResolvedCondition,
    *,
    tags: Mapping[str, str],
    config: Any,
    values: Mapping[str, Any],
) -> Verdict:
    """Evaluate a resolved condition on the step's inputs (Delivery attribute -> value)."""
    upstream = {factory: values[attr] for factory, attr in resolved.attributes.items()}
    return resolved.condition.evaluate(ConditionInputs(tags, config, upstream))


def skipped_upstream(values: Mapping[str, Any]) -> list[str]:
    """Delivery attributes whose value is the SKIPPED marker (a Stage job's skipped Factory)."""
    return [attr for attr, value in values.items() if is_skipped(value)]


# -- branches ---------------------------------------------------------------------------------


class BranchFactory:
    """Marker base of the Factory `branch(...)` builds: one asset, whose step runs `then` or
    `otherwise` as `choose` says. Never run directly (the step runs the chosen alternative)."""

    branch_choose: Condition
    branch_then: Factory[Any]
    branch_otherwise: Factory[Any]

    def read(self) -> Any:
        raise PySetlDefinitionError(
            f"{type(self).__name__} is a branch: run it through pysetl-dagster, which runs the "
            "chosen alternative."
        )

    process = write = read

    def get(self) -> Any:
        return self.read()


def branch(
    *,
    choose: Condition,
    then: Factory[Any],
    otherwise: Factory[Any],
    name: str | None = None,
) -> Factory[Any]:
    """One Factory (one asset) that runs `then` when `choose` holds, else `otherwise`.

    Both alternatives must produce the same output type; the branch consumes every Delivery
    either one declares, so its consumers read one asset whichever branch ran (a Dagster skip
    of the other branch never reaches them). The run's materialization says which branch ran
    (`pysetl/branch_taken`); the asset's metadata lists both (`pysetl/branch`).

    Args:
        choose: the condition deciding which alternative runs.
        then: the Factory that runs when `choose` holds.
        otherwise: the Factory that runs when it does not.
        name: the branch Factory's class name (default `<Then>Or<Otherwise>`).
    """
    then_type, other_type = type(then), type(otherwise)
    label = name or f"{then_type.__name__}Or{other_type.__name__}"
    try:
        then_out, other_out = then_type.delivery_type(), other_type.delivery_type()
    except Exception as exc:
        raise PySetlDefinitionError(
            f"Branch {label}: both alternatives must declare their output type "
            f"(Factory[...]): {exc}"
        ) from exc
    if then_out != other_out:
        raise PySetlDefinitionError(
            f"Branch {label}: {then_type.__name__} produces {then_out.tp!r} but "
            f"{other_type.__name__} produces {other_out.tp!r}. Both alternatives must produce "
            "the same type, so consumers read one asset whichever ran."
        )
    deliveries: dict[str, Delivery[Any]] = {}
    for alternative in (then_type, other_type):
        for attr, delivery in inspect.getmembers(alternative, lambda v: isinstance(v, Delivery)):
            seen = deliveries.get(attr)
            if seen is not None and (
                DeliveryType(seen.payload_type) != DeliveryType(delivery.payload_type)
                or seen.delivery_id != delivery.delivery_id
            ):
                raise PySetlDefinitionError(
                    f"Branch {label}: {then_type.__name__}.{attr} and {other_type.__name__}."
                    f"{attr} are different Deliveries under one name. Rename one of them."
                )
            deliveries[attr] = delivery
    doc = f"Branch: {then_type.__name__} when {choose.describe()}, else {other_type.__name__}."

    def body(ns: dict[str, Any]) -> None:
        ns.update(deliveries)
        ns.update(
            __doc__=doc,
            __module__=then_type.__module__,
            branch_choose=choose,
            branch_then=then,
            branch_otherwise=otherwise,
        )

    base: Any = Factory[then_out.tp]  # type: ignore[name-defined]
    cls = types.new_class(label, (BranchFactory, base), {}, body)
    return cls()  # type: ignore[no-any-return]


def is_branch(factory: Any) -> bool:
    return isinstance(factory, BranchFactory)


def alternative(factory: Any, holds: bool) -> Factory[Any]:
    """The alternative of a branch Factory its condition's value selects."""
    chosen: Factory[Any] = factory.branch_then if holds else factory.branch_otherwise
    return chosen


def choose_branch(
    factory: Any,
    resolved: ResolvedCondition,
    *,
    tags: Mapping[str, str],
    config: Any,
    values: Mapping[str, Any],
) -> tuple[Factory[Any], Verdict]:
    """The alternative a branch runs this time, and why."""
    verdict = evaluate_condition(resolved, tags=tags, config=config, values=values)
    return (factory.branch_then if verdict.holds else factory.branch_otherwise), verdict


# -- A/B variants ----------------------------------------------------------------------------

VARIANT_TAG = MetadataKey.VARIANT
BOTH = "both"


def variants(
    flag: str, choices: Mapping[str, Factory[Any]], *, default: str = BOTH
) -> list[Factory[Any]]:
    """A/B paths: variants of a Factory on the same input, each its own asset (distinct keys;
    the same metadata keys, so their metrics compare side by side) tagged `pysetl/variant`.

    The flag `flag` (run tag `pysetl/<flag>` or a Config field) picks one variant by its label,
    or `both` (the default) runs them side by side. Each variant's output gets its label as
    `delivery_id`, so ordinary consumers never read a variant by accident.

    Args:
        flag: the flag (Config field or run tag `pysetl/<flag>`) naming the variant to run.
        choices: variant label -> Factory; each becomes its own asset.
        default: the label run when the flag is not set (`both`: all side by side).
    """
    if len(choices) < 2:
        raise PySetlDefinitionError(f"variants({flag!r}, ...) needs at least two variants.")
    factories = []
    for label, factory in choices.items():
        if label == BOTH:
            raise PySetlDefinitionError(f"variants({flag!r}, ...): {BOTH!r} is reserved.")
        chosen: Condition = when_config(flag, equals=label, default=default) | when_config(
            flag, equals=BOTH, default=default
        )
        existing = getattr(factory, "condition", None)
        factory.condition = chosen if existing is None else existing & chosen  # type: ignore[attr-defined]
        factory.variant = label  # type: ignore[attr-defined]
        factory.delivery_id = label
        factories.append(factory)
    return factories
