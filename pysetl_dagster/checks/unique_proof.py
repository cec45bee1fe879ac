"""Uniqueness proved from a Factory's Spark plan, so that its check needs no Spark job.

A uniqueness check costs a shuffle of the key columns: about as much as writing the output
when the Factory computes little. Often the plan already guarantees the answer: the key is a
`spark.range` id, a `groupBy` key, or either of those carried through projections, filters,
sorts, limits, windows and joins that cannot repeat a row (the other side matches at most one
row per key). Spark's own `LogicalPlan.distinctKeys` knows most of these rules but not `Range`,
and it is internal API; this module walks the analysed logical plan through py4j with a small,
conservative subset of the same rules. Anything it does not recognise proves nothing, and the
check is computed as before. No plan, no proof: Spark Connect has no JVM plan to walk.

Soundness over reach: a proof must hold for *every* evaluation of the plan (the write runs it
once more), so only structural facts are used, never statistics or data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pysetl_dagster.errors import PySetlError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

KeySets = list[frozenset[int]]
"""Sets of attribute ids (Spark `exprId`s): each set's values are distinct across the rows."""

_PASS_THROUGH = frozenset(
    {
        "Filter",
        "Sort",
        "GlobalLimit",
        "LocalLimit",
        "Offset",
        "Tail",
        "Repartition",
        "RepartitionByExpression",
        "RebalancePartitions",
        "SubqueryAlias",
        "View",
        "CollectMetrics",
        "Window",
        "ResolvedHint",
        "WithWatermark",
    }
)
"""Nodes that keep or remove rows of their (first) child, never repeat one, and keep its
attributes: the child's distinct keys hold for them."""


def proved_unique(df: DataFrame, columns: Sequence[str]) -> str | None:
    """Why `columns` are provably unique in `df` (a sentence for the check's metadata), or None
    when the plan proves nothing (then the check must be computed)."""
    jdf = getattr(df, "_jdf", None)
    if jdf is None or not columns:
        return None
    try:
        plan = jdf.queryExecution().analyzed()
        output = _seq(plan.output())
        by_name: dict[str, list[int]] = {}
        for attribute in output:
            by_name.setdefault(attribute.name(), []).append(_id(attribute))
        if any(len(by_name.get(c, [])) != 1 for c in columns):
            return None  # missing or ambiguous by name: prove nothing
        wanted = frozenset(by_name[c][0] for c in columns)
        reasons: list[str] = []
        for keys in _distinct_keys(plan, reasons):
            if keys <= wanted:
                why = ", ".join(dict.fromkeys(r for r in reasons if r))
                return f"proved from the Factory's Spark plan ({why}): no Spark job"
    except Exception:  # too deep, an unexpected plan shape, a py4j error: prove nothing
        return None
    return None


def _seq(scala_seq: Any) -> list[Any]:
    return [scala_seq.apply(i) for i in range(scala_seq.size())]


def _id(attribute: Any) -> int:
    return int(attribute.exprId().id())


def _kind(node: Any) -> str:
    return str(node.getClass().getSimpleName())


def _attribute_id(expression: Any) -> int | None:
    """The attribute an expression is (through aliases), or None for any computed value."""
    while _kind(expression) == "Alias":
        expression = expression.child()
    if _kind(expression) == "AttributeReference":
        return _id(expression)
    return None


MAX_NODES = 300
"""A plan deeper than this proves nothing (each node costs a few py4j calls)."""


class _TooDeep(PySetlError):
    """A plan deeper than the node budget: it proves nothing (internal; never escapes)."""


def _distinct_keys(plan: Any, reasons: list[str]) -> KeySets:
    """Sets of this node's output attributes known to be distinct; `reasons` collects the
    nodes that gave a key (for the metadata) and counts the nodes visited."""
    reasons.append("")  # one entry per node visited: the walk's budget
    if len(reasons) > MAX_NODES:
        raise _TooDeep
    kind = _kind(plan)
    if kind == "Range":
        reasons.append("spark.range ids")
        return [frozenset({_id(_seq(plan.output())[0])})]
    if kind in _PASS_THROUGH:
        return _distinct_keys(_seq(plan.children())[0], reasons)
    if kind == "Sample":
        return [] if plan.withReplacement() else _distinct_keys(plan.child(), reasons)
    if kind == "Project":
        return _project(_distinct_keys(plan.child(), reasons), _seq(plan.projectList()))
    if kind == "Aggregate":
        return _aggregate(plan, reasons)
    if kind == "Distinct":
        reasons.append("distinct")
        return [frozenset(_id(a) for a in _seq(plan.output()))]
    if kind == "Deduplicate":  # dropDuplicates(keys), and distinct() in Spark 4
        reasons.append("dropDuplicates")
        keys = frozenset(_id(a) for a in _seq(plan.keys()))
        return [keys, *_distinct_keys(plan.child(), reasons)]
    if kind == "Join":
        return _join(plan, reasons)
    return []


def _project(child_keys: KeySets, project_list: Sequence[Any]) -> KeySets:
    """A key survives a projection when each of its attributes is kept (or renamed)."""
    renamed: dict[int, int] = {}
    for expression in project_list:
        source = _attribute_id(expression)
        if source is not None:
            renamed.setdefault(source, _id(expression.toAttribute()))
    return [frozenset(renamed[a] for a in keys) for keys in child_keys if keys <= renamed.keys()]


def _aggregate(plan: Any, reasons: list[str]) -> KeySets:
    """One row per group: the grouping attributes, as the aggregate outputs them."""
    grouping = [_attribute_id(e) for e in _seq(plan.groupingExpressions())]
    outputs = _seq(plan.aggregateExpressions())
    if not grouping:
        reasons.append("a global aggregate (one row)")
        return [frozenset({_id(e.toAttribute())}) for e in outputs]
    if any(g is None for g in grouping):
        return []  # a computed grouping expression: not followed
    renamed: dict[int, int] = {}
    for expression in outputs:
        source = _attribute_id(expression)
        if source is not None:
            renamed.setdefault(source, _id(expression.toAttribute()))
    if not all(g in renamed for g in grouping):
        return []
    reasons.append("a groupBy key")
    return [frozenset(renamed[g] for g in grouping if g is not None)]


_EQUALITIES = frozenset({"EqualTo", "EqualNullSafe"})


def _conjuncts(condition: Any) -> list[Any]:
    if _kind(condition) == "And":
        return [*_conjuncts(condition.left()), *_conjuncts(condition.right())]
    return [condition]


def _join(plan: Any, reasons: list[str]) -> KeySets:
    """A side's keys survive a join when each of its rows meets at most one row of the other
    side: the other side is distinct on (a subset of) its equi-join attributes."""
    how = str(plan.joinType().sql()).upper()
    left_keys = _distinct_keys(plan.left(), reasons)
    if how in {"LEFT SEMI", "LEFT ANTI"}:
        return left_keys
    right_keys = _distinct_keys(plan.right(), reasons)
    left_ids = {_id(a) for a in _seq(plan.left().output())}
    right_ids = {_id(a) for a in _seq(plan.right().output())}
    left_on: set[int] = set()
    right_on: set[int] = set()
    if plan.condition().isDefined():
        for term in _conjuncts(plan.condition().get()):
            if _kind(term) not in _EQUALITIES:
                continue
            a, b = _attribute_id(term.left()), _attribute_id(term.right())
            if a in left_ids and b in right_ids:
                left_on.add(a)
                right_on.add(b)
            elif b in left_ids and a in right_ids:
                left_on.add(b)
                right_on.add(a)
    right_at_most_one = any(k <= right_on for k in right_keys)
    left_at_most_one = any(k <= left_on for k in left_keys)
    kept: KeySets = []
    if how in {"INNER", "LEFT OUTER"} and right_at_most_one:
        kept += left_keys
    if how in {"INNER", "RIGHT OUTER"} and left_at_most_one:
        kept += right_keys
    if kept:
        reasons.append("a join matching at most one row per key")
    return kept
