"""pandera schemas as Dagster asset checks, evaluated by Spark in one pass.

A Factory declares its schema once (`validation = Validation(MyModel, blocking=True)`, or just
`validation = MyModel`); a Factory typed `DataSet[Schema]` gets one generated from its typedspark
Schema. Every pandera check becomes one `AssetCheckSpec` (`<column>__<check>`), plus
`schema__columns` (presence and dtypes) and `schema__drift` (columns added, dropped or retyped
since the last materialization).

pandera's own PySpark backend runs one Spark job per check and column. Here every row-level check
(nullability, comparisons, ranges, `isin`/`notin`, string lengths, regexes, prefixes) is
compiled into a Spark column counting its failures, and all of them are computed with
`DataFrame.observe` *while the output is written*: no extra Spark job. Dtypes and presence come
from the schema (no job). Uniqueness takes one more job; custom Python checks run through
pandera's own backend. Failure cases (a few rows) are fetched only for checks that failed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
)

from pysetl_dagster.metadata import MetadataKey

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

SCHEMA_CHECK = "schema__columns"
IN_MEMORY_ENGINES = frozenset({"pandas", "polars"})
"""Engines whose outputs are on the driver already: pandera validates them in memory."""
DRIFT_CHECK = "schema__drift"


class ValidationDepth(StrEnum):
    """How much of a schema is checked (pandera's `ValidationDepth`, settable per Factory)."""

    SCHEMA_ONLY = "schema_only"  # columns, dtypes, nullability: no Spark job beyond the write
    DATA_ONLY = "data_only"  # value checks and uniqueness
    SCHEMA_AND_DATA = "schema_and_data"


@dataclass(frozen=True)
class Validation:
    """A Factory's schema and how its checks behave.

    Args:
        schema: a pandera `DataFrameModel` class or `DataFrameSchema` (`pandera.pyspark` for
            Spark outputs, `pandera.pandas` for pandas outputs), or a typedspark `Schema` class.
        blocking: True: every ERROR check blocks publishing and downstream Factories; a set of
            check names: only those do. WARN checks (pandera `raise_warning=True`) never block.
        depth: how much to check; None uses the storage's default.
        sample_fraction: check uniqueness and custom checks on this fraction of the rows (very
            large outputs); None uses the storage's default (all rows). Row-level checks are
            always exact: they ride on the write.
        failure_cases: rows of failure cases shown per failed check.
    """

    schema: Any
    blocking: bool | Iterable[str] = False
    depth: ValidationDepth | str | None = None
    sample_fraction: float | None = None
    failure_cases: int = 5

    def __post_init__(self) -> None:
        if not isinstance(self.blocking, bool):
            object.__setattr__(self, "blocking", frozenset(self.blocking))
        if self.depth is not None:
            object.__setattr__(self, "depth", ValidationDepth(self.depth))


def as_validation(value: Any) -> Validation | None:
    """A Factory's `validation` attribute as a `Validation` (a bare schema is non-blocking)."""
    if value is None or isinstance(value, Validation):
        return value
    return Validation(value)


# -- schemas ---------------------------------------------------------------------------------


def pandera_schema_from_typedspark(schema: type, **kwargs: Any) -> Any:
    """A `pandera.pyspark.DataFrameSchema` with the columns, types and nullability of a typedspark
    Schema. Extend it with checks: `.update_columns({"email": {"checks": [...]}})`; `kwargs` go to
    `DataFrameSchema` (e.g. `unique=["id"]`)."""
    import pandera.pyspark as pa

    struct = schema.get_structtype()  # type: ignore[attr-defined]
    kwargs.setdefault("name", schema.__name__)
    return pa.DataFrameSchema(
        {f.name: pa.Column(f.dataType, nullable=f.nullable) for f in struct.fields}, **kwargs
    )


def _is_typedspark_schema(value: Any) -> bool:
    from typedspark import Schema

    # typedspark's Schema is a Protocol: recognise its classes by their metaclass.
    return isinstance(value, type) and isinstance(value, type(Schema)) and value is not Schema


def resolve_schema(schema: Any) -> Any:
    """A pandera `DataFrameSchema` from a model class, a schema or a typedspark Schema."""
    if _is_typedspark_schema(schema):
        return pandera_schema_from_typedspark(schema)
    to_schema = getattr(schema, "to_schema", None)
    if isinstance(schema, type) and callable(to_schema):
        return to_schema()
    return schema


def schema_engine(schema: Any) -> str:
    """ "pyspark", "pandas" or "polars" (the backend a resolved pandera schema validates)."""
    from pandera.api.pyspark.container import DataFrameSchema as SparkSchema

    if isinstance(schema, SparkSchema):
        return "pyspark"
    from pandera.api.pandas.container import DataFrameSchema as PandasSchema

    if isinstance(schema, PandasSchema):
        return "pandas"
    try:
        from pandera.api.polars.container import DataFrameSchema as PolarsSchema
    except ImportError:  # polars is optional
        return _not_a_schema(schema)
    if isinstance(schema, PolarsSchema):
        return "polars"
    return _not_a_schema(schema)


def _not_a_schema(schema: Any) -> str:
    raise TypeError(
        f"{schema!r} is not a pandera DataFrameSchema or DataFrameModel for pyspark, pandas "
        "or polars"
    )


# -- the plan: one entry per asset check ------------------------------------------------------


# pandera built-in check name -> (Spark expression of a *failing* row, from column and kwargs).
def _builtin_failure(name: str, column: str, kw: Mapping[str, Any]) -> Column | None:
    from pyspark.sql import functions as F

    c = F.col(column)
    if name == "equal_to":
        return ~(c == kw["value"])
    if name == "not_equal_to":
        return ~(c != kw["value"])
    if name == "greater_than":
        return ~(c > kw["min_value"])
    if name == "greater_than_or_equal_to":
        return ~(c >= kw["min_value"])
    if name == "less_than":
        return ~(c < kw["max_value"])
    if name == "less_than_or_equal_to":
        return ~(c <= kw["max_value"])
    if name == "in_range":
        low = c >= kw["min_value"] if kw.get("include_min", True) else c > kw["min_value"]
        high = c <= kw["max_value"] if kw.get("include_max", True) else c < kw["max_value"]
        return ~(low & high)
    if name == "isin":
        return ~c.isin(list(kw["allowed_values"]))
    if name == "notin":
        return c.isin(list(kw["forbidden_values"]))
    if name in {"str_matches", "str_contains"}:
        pattern = kw["pattern"]
        pattern = pattern.pattern if isinstance(pattern, re.Pattern) else pattern
        if name == "str_matches" and not pattern.startswith("^"):
            pattern = f"^{pattern}"
        return ~c.rlike(pattern)
    if name == "str_startswith":
        return ~c.startswith(kw["string"])
    if name == "str_endswith":
        return ~c.endswith(kw["string"])
    if name == "str_length":
        length = F.length(c)
        if kw.get("exact_value") is not None:
            return ~(length == kw["exact_value"])
        conds = []
        if kw.get("min_value") is not None:
            conds.append(length >= kw["min_value"])
        if kw.get("max_value") is not None:
            conds.append(length <= kw["max_value"])
        if not conds:
            return None
        cond = conds[0] if len(conds) == 1 else conds[0] & conds[1]
        return ~cond
    return None


SPARK_BUILTINS = frozenset(
    {
        "equal_to",
        "not_equal_to",
        "greater_than",
        "greater_than_or_equal_to",
        "less_than",
        "less_than_or_equal_to",
        "in_range",
        "isin",
        "notin",
        "str_matches",
        "str_contains",
        "str_startswith",
        "str_endswith",
        "str_length",
    }
)


@dataclass(frozen=True)
class PlannedCheck:
    """One asset check of a Factory: what it checks and how it is evaluated."""

    name: str
    kind: str  # "columns" | "nullable" | "builtin" | "unique" | "custom" | "drift" | "pandas"
    description: str
    severity: AssetCheckSeverity
    blocking: bool
    column: str | None = None
    check: Any = None  # the pandera Check, for "builtin" and "custom"

    def failure_expr(self) -> Column | None:
        """The Spark expression that is true on a failing row (row-level checks only)."""
        from pyspark.sql import functions as F

        if self.kind == "nullable" and self.column:
            return F.col(self.column).isNull()
        if self.kind == "builtin" and self.column:
            return _builtin_failure(self.check.name, self.column, self.check._check_kwargs)
        return None


@dataclass(frozen=True)
class CheckPlan:
    """Every asset check of one Factory's asset, built at load time (no Spark)."""

    asset_key: AssetKey
    factory: str
    validation: Validation
    schema: Any
    engine: str
    checks: tuple[PlannedCheck, ...]

    def specs(self) -> list[AssetCheckSpec]:
        return [
            AssetCheckSpec(
                name=c.name,
                asset=self.asset_key,
                description=f"{c.description} (pandera, Factory {self.factory})",
                blocking=c.blocking,
                metadata={
                    MetadataKey.CHECK_KIND: c.kind,
                    **({"column": c.column} if c.column else {}),
                },
            )
            for c in self.checks
        ]

    def dagster_type(self) -> Any:
        """A blocking pandas schema is also the output's DagsterType (dagster-pandera), so the
        UI shows the schema as the type and its type check as Dagster's own. Non-blocking
        schemas must not fail the step, so they stay checks only."""
        if self.engine != "pandas" or self.validation.blocking is not True:
            return None
        from dagster_pandera import pandera_schema_to_dagster_type

        return pandera_schema_to_dagster_type(self.schema)

    def selected(self, keys: Iterable[AssetCheckKey] | None) -> CheckPlan:
        if keys is None:
            return self
        names = {k.name for k in keys if k.asset_key == self.asset_key}
        return replace(self, checks=tuple(c for c in self.checks if c.name in names))

    def with_depth(self, depth: ValidationDepth) -> CheckPlan:
        schema_kinds = {"columns", "nullable", "drift"}
        if depth is ValidationDepth.SCHEMA_AND_DATA:
            return self
        keep: Callable[[PlannedCheck], bool] = (
            (lambda c: c.kind in schema_kinds)
            if depth is ValidationDepth.SCHEMA_ONLY
            else (lambda c: c.kind not in schema_kinds)
        )
        return replace(self, checks=tuple(c for c in self.checks if keep(c)))


def _check_label(check: Any) -> str:
    return str(check.error or check.name or "check")


def _spec_name(raw: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", raw)


def build_check_plan(validation: Validation, asset_key: AssetKey, factory: str) -> CheckPlan:
    """Turn a schema into the asset checks it declares. Raises `TypeError` on a non-schema."""
    schema = resolve_schema(validation.schema)
    engine = schema_engine(schema)
    blocking = validation.blocking

    def is_blocking(name: str, severity: AssetCheckSeverity) -> bool:
        if severity is AssetCheckSeverity.WARN:
            return False
        return blocking if isinstance(blocking, bool) else name in blocking

    checks: list[PlannedCheck] = []
    used: set[str] = set()

    def add(
        kind: str,
        raw_name: str,
        description: str,
        severity: AssetCheckSeverity,
        column: str | None = None,
        check: Any = None,
    ) -> None:
        name = _spec_name(raw_name)
        base, n = name, 2
        while name in used:
            name, n = f"{base}_{n}", n + 1
        used.add(name)
        checks.append(
            PlannedCheck(
                name, kind, description, severity, is_blocking(name, severity), column, check
            )
        )

    error, warn = AssetCheckSeverity.ERROR, AssetCheckSeverity.WARN
    if engine in IN_MEMORY_ENGINES:
        add("pandas", "schema__pandera", f"pandera schema {schema.name or ''}".strip(), error)
        return CheckPlan(asset_key, factory, validation, schema, engine, tuple(checks))

    add("columns", SCHEMA_CHECK, "every schema column is present with its dtype", error)
    for name, column in schema.columns.items():
        if not column.nullable:
            add("nullable", f"{name}__not_nullable", f"{name} has no nulls", error, name)
        for check in column.checks:
            severity = warn if check.raise_warning else error
            kind = "builtin" if check.name in SPARK_BUILTINS else "custom"
            add(
                kind,
                f"{name}__{check.name}",
                f"{name}: {_check_label(check)}",
                severity,
                name,
                check,
            )
    if schema.unique:
        cols = [schema.unique] if isinstance(schema.unique, str) else list(schema.unique)
        add("unique", f"unique__{'__'.join(cols)}", f"rows unique on {cols}", error, ",".join(cols))
    for check in schema.checks:
        severity = warn if check.raise_warning else error
        add(
            "custom",
            f"dataframe__{check.name}",
            f"dataframe: {_check_label(check)}",
            severity,
            None,
            check,
        )
    add("drift", DRIFT_CHECK, "no column added, dropped or retyped since the last version", warn)
    return CheckPlan(asset_key, factory, validation, schema, engine, tuple(checks))


# -- evaluation ------------------------------------------------------------------------------


@dataclass
class CheckOutcome:
    """The result of one planned check on one output."""

    check: PlannedCheck
    passed: bool
    failing_rows: int | None = None
    rows: int | None = None
    message: str = ""
    failure_cases: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    seconds: float | None = None  # time of the whole evaluation this outcome was part of

    @property
    def blocks(self) -> bool:
        return not self.passed and self.check.blocking

    def metadata(self, plan: CheckPlan) -> dict[str, Any]:
        meta: dict[str, Any] = {"check": MetadataValue.text(self.check.description)}
        if self.check.column:
            meta["column"] = MetadataValue.text(self.check.column)
        if self.failing_rows is not None:
            meta["failing_rows"] = MetadataValue.int(self.failing_rows)
        if self.rows is not None:
            meta["rows"] = MetadataValue.int(self.rows)
        if self.message:
            meta["message"] = MetadataValue.text(self.message)
        if self.failure_cases:
            meta["failure_cases"] = _records_table(self.failure_cases)
        meta["schema"] = MetadataValue.md(schema_markdown(plan))
        meta.update(self.extra)
        return meta

    def result(self, plan: CheckPlan) -> AssetCheckResult:
        return AssetCheckResult(
            asset_key=plan.asset_key,
            check_name=self.check.name,
            passed=self.passed,
            severity=self.check.severity,
            metadata=self.metadata(plan),
        )

    def evaluation(self, plan: CheckPlan) -> AssetCheckEvaluation:
        """The same result as an event an op (a Stage job) can log."""
        return AssetCheckEvaluation(
            asset_key=plan.asset_key,
            check_name=self.check.name,
            passed=self.passed,
            severity=self.check.severity,
            metadata=self.metadata(plan),
            blocking=self.check.blocking,
        )


def _records_table(records: Sequence[Mapping[str, Any]]) -> Any:
    names = list(dict.fromkeys(k for r in records for k in r))
    return MetadataValue.table(
        records=[TableRecord({k: _cell(r.get(k)) for k in names}) for r in records],
        schema=TableSchema(columns=[TableColumn(n, "string") for n in names]),
    )


def _cell(value: Any) -> str | None:
    """Table cells as text: failure cases mix types in one column (a price, a SKU)."""
    return None if value is None else str(value)


def schema_markdown(plan: CheckPlan) -> str:
    """The schema as a Markdown table: column, dtype, nullable, checks."""
    schema = plan.schema
    lines = [
        f"pandera schema `{schema.name or plan.factory}` ({plan.engine})",
        "",
        "| column | dtype | nullable | checks |",
        "|---|---|---|---|",
    ]
    for name, column in schema.columns.items():
        checks = ", ".join(_check_label(c) for c in column.checks) or "-"
        lines.append(f"| {name} | {column.dtype} | {column.nullable} | {checks} |")
    if getattr(schema, "unique", None):
        lines.append(f"\nunique: {schema.unique}")
    return "\n".join(lines)


def observed_exprs(plan: CheckPlan, df: DataFrame) -> tuple[list[Column], dict[str, str]]:
    """Aggregates for `DataFrame.observe`: the row count and each row-level check's failures.

    Returns the expressions and, for checks whose expression Spark cannot analyse on this
    output (a missing column, a wrong type), the error to report instead.
    """
    from pyspark.sql import functions as F

    exprs = [F.count(F.lit(1)).alias("__rows")]
    broken: dict[str, str] = {}
    present = set(df.columns)
    for i, check in enumerate(plan.checks):
        if check.column is not None and check.kind in {"nullable", "builtin"}:
            if check.column not in present:
                broken[check.name] = f"column {check.column!r} is missing from the output"
                continue
            expr = check.failure_expr()
            if expr is None:
                continue
            counted = F.sum(F.when(expr, 1).otherwise(0)).alias(f"__c{i}")
            try:
                df.select(F.when(expr, 1).alias("probe"))  # analysis only: no Spark job
            except Exception as exc:
                broken[check.name] = f"cannot evaluate on this output: {exc}".split("\n")[0]
                continue
            exprs.append(counted)
    return exprs, broken


def evaluate(
    plan: CheckPlan,
    written: DataFrame,
    observed: Mapping[str, Any],
    *,
    broken: Mapping[str, str] | None = None,
    previous_schema: Any = None,
    sample_fraction: float | None = None,
) -> list[CheckOutcome]:
    """Outcomes of every planned check on `written` (the stored version, read back lazily).

    `observed` holds what `DataFrame.observe` computed during the write (`__rows`, `__c<i>`).
    Spark jobs here: one for uniqueness, one per custom check (pandera's backend), and one to
    fetch failure cases when a row-level check failed.
    """
    broken = dict(broken or {})
    rows = observed.get("__rows")
    rows = int(rows) if rows is not None else None
    outcomes: list[CheckOutcome] = []
    failed_row_checks: list[tuple[int, CheckOutcome]] = []
    for i, check in enumerate(plan.checks):
        if check.name in broken:
            outcomes.append(CheckOutcome(check, False, message=broken[check.name]))
            continue
        if check.kind == "columns":
            outcomes.append(_columns_outcome(check, plan.schema, written))
        elif check.kind in {"nullable", "builtin"}:
            failing = observed.get(f"__c{i}")
            if failing is None:
                outcomes.append(CheckOutcome(check, False, message="not evaluated"))
                continue
            outcome = CheckOutcome(check, int(failing) == 0, int(failing), rows)
            if not outcome.passed:
                failed_row_checks.append((i, outcome))
            outcomes.append(outcome)
        elif check.kind == "unique":
            outcomes.append(_unique_outcome(check, _sampled(written, sample_fraction), rows))
        elif check.kind == "custom":
            outcomes.append(_custom_outcome(check, plan.schema, _sampled(written, sample_fraction)))
        elif check.kind == "drift":
            outcomes.append(drift_outcome(check, previous_schema, written.schema))
    if failed_row_checks:
        _attach_failure_cases(written, failed_row_checks, plan.validation.failure_cases)
    return outcomes


def _sampled(df: DataFrame, fraction: float | None) -> DataFrame:
    return df.sample(fraction=fraction, seed=0) if fraction and fraction < 1 else df


def _columns_outcome(check: PlannedCheck, schema: Any, df: DataFrame) -> CheckOutcome:
    from pandera.engines.pyspark_engine import Engine

    types = {f.name: f.dataType for f in df.schema.fields}
    problems: list[dict[str, Any]] = []
    for name, column in schema.columns.items():
        if name not in types:
            problems.append({"column": name, "expected": str(column.dtype), "found": "missing"})
        elif column.dtype is not None and not column.dtype.check(Engine.dtype(types[name])):
            problems.append(
                {
                    "column": name,
                    "expected": str(column.dtype),
                    "found": str(Engine.dtype(types[name])),
                }
            )
    message = "; ".join(
        f"{p['column']}: expected {p['expected']}, found {p['found']}" for p in problems
    )
    return CheckOutcome(check, not problems, len(problems), len(schema.columns), message, problems)


def _unique_outcome(check: PlannedCheck, df: DataFrame, rows: int | None) -> CheckOutcome:
    from pyspark.sql import functions as F

    cols = (check.column or "").split(",")
    stats = (
        df.groupBy(*cols)
        .count()
        .where(F.col("count") > 1)
        .agg(F.count(F.lit(1)).alias("groups"), F.sum("count").alias("rows"))
        .first()
    )
    groups = int(stats["groups"] or 0) if stats else 0
    dup_rows = int(stats["rows"] or 0) if stats else 0
    outcome = CheckOutcome(check, groups == 0, dup_rows, rows)
    outcome.extra["duplicate_groups"] = MetadataValue.int(groups)
    if groups:
        outcome.message = f"{groups} value(s) of {cols} occur more than once ({dup_rows} rows)"
        cases = df.groupBy(*cols).count().where(F.col("count") > 1).limit(5).collect()
        outcome.failure_cases = [r.asDict() for r in cases]
    return outcome


def _custom_outcome(check: PlannedCheck, schema: Any, df: DataFrame) -> CheckOutcome:
    """A check pandera cannot express as a Spark column: pandera's own backend runs it."""
    import pandera.pyspark as pa

    if check.column is not None:
        column = schema.columns[check.column]
        single = pa.DataFrameSchema(
            {check.column: pa.Column(column.dtype, checks=[check.check], nullable=True)}
        )
    else:
        single = pa.DataFrameSchema(checks=[check.check])
    validated = single.validate(df, lazy=True)
    errors: dict[str, Any] = dict(validated.pandera.errors or {})
    messages = [
        e.get("error", "")
        for category in errors.values()
        for entries in category.values()
        for e in entries
    ]
    outcome = CheckOutcome(check, not messages, message="; ".join(messages))
    outcome.extra["evaluated_by"] = MetadataValue.text("pandera pyspark backend (custom check)")
    return outcome


def drift_outcome(check: PlannedCheck, previous: Any, current: Any) -> CheckOutcome:
    """Columns added, dropped or retyped since the previous stored version (no Spark job)."""
    if previous is None:
        return CheckOutcome(check, True, message="no previous version to compare with")
    before = {f.name: f.dataType.simpleString() for f in previous.fields}
    after = {f.name: f.dataType.simpleString() for f in current.fields}
    changes = (
        [{"column": n, "change": "added", "type": after[n]} for n in after if n not in before]
        + [{"column": n, "change": "dropped", "type": before[n]} for n in before if n not in after]
        + [
            {"column": n, "change": "retyped", "type": f"{before[n]} -> {after[n]}"}
            for n in after
            if n in before and before[n] != after[n]
        ]
    )
    message = "; ".join(f"{c['column']} {c['change']} ({c['type']})" for c in changes)
    return CheckOutcome(check, not changes, len(changes), None, message, changes)


def _attach_failure_cases(
    df: DataFrame, failed: list[tuple[int, CheckOutcome]], per_check: int
) -> None:
    """A few failing rows per failed check, in one Spark action over the stored version."""
    from functools import reduce

    from pyspark.sql import functions as F

    parts = []
    for i, outcome in failed:
        expr = outcome.check.failure_expr()
        column = outcome.check.column
        if expr is None or column is None:
            continue
        parts.append(
            df.where(expr)
            .select(F.lit(i).alias("__check"), F.col(column).cast("string").alias("value"))
            .limit(per_check)
        )
    if not parts:
        return
    rows = reduce(lambda a, b: a.unionByName(b), parts).collect()
    by_index = {i: o for i, o in failed}
    for row in rows:
        outcome = by_index[row["__check"]]
        outcome.failure_cases.append({"column": outcome.check.column, "value": row["value"]})


def evaluate_pandas(plan: CheckPlan, value: Any) -> list[CheckOutcome]:
    """A pandas or polars output: pandera validates it in memory (it is on the driver)."""
    import pandera.errors as pe

    (check,) = plan.checks
    try:
        plan.schema.validate(value, lazy=True)
    except pe.SchemaErrors as exc:
        cases = exc.failure_cases
        head = cases.head(50)
        records = head.to_dicts() if hasattr(head, "to_dicts") else head.to_dict("records")
        outcome = CheckOutcome(
            check, False, len(cases), len(value), f"{len(cases)} failure case(s)", records
        )
        return [outcome]
    return [CheckOutcome(check, True, 0, len(value))]


def summary_table(outcomes: Sequence[CheckOutcome]) -> Any:
    """Every check of a materialization in one table (the materialization's metadata)."""
    return _records_table(
        [
            {
                "check": o.check.name,
                "severity": o.check.severity.value,
                "blocking": o.check.blocking,
                "passed": o.passed,
                "failing_rows": o.failing_rows,
                "message": o.message[:200],
            }
            for o in outcomes
        ]
    )
