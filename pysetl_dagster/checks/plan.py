"""pandera schemas as Dagster asset checks, evaluated by Spark in one fused pass.

A Factory declares its schema once (`validation = Validation(MyModel, blocking=True)`, or just
`validation = MyModel`); a Factory typed `DataSet[Schema]` gets one generated from its typedspark
Schema. Every pandera check becomes one `AssetCheckSpec` (`<column>__<check>`), plus
`schema__columns` (presence and dtypes) and `schema__drift` (columns added, dropped or retyped
since the last materialization).

pandera's own PySpark backend runs one Spark job per check and column. Here, as cuallee fuses
its row rules into one `observe` and its aggregates into one `select`:

- every row-level check (nullability, comparisons, ranges, `isin`/`notin`, string lengths,
  regexes, prefixes, and `row_check` predicates, on a column or on the whole row) is one
  Spark predicate; *during the write* the output is observed with two aggregates only: the row
  count and the number of rows failing *any* predicate. Each observed aggregate is updated row
  by row outside whole-stage code generation, so one aggregate per check (as before) cost
  about as much as the write itself; two cost almost nothing.
- after the write, at most one query over the stored version, each part reading only the
  columns it needs: per-check failing rows and up to `failure_cases` examples, observed on
  the failing rows only (only when some row failed), and uniqueness over the key columns
  (when declared and not proved by the Factory's plan, see `unique_proof`), as observations
  of one no-op write: one Spark job, two with uniqueness (its shuffle), whatever the number
  of checks.
- opaque custom checks (a function returning one boolean, as pandera's PySpark checks do) run
  as pandera runs them, one check at a time; they report pass or fail only, so a check that
  can be a row predicate should be declared with `row_check` (counted, with failure cases).

NaN follows pandera's PySpark backend: a value, not a null, ordered above every number (it
fails `le`/`lt`/`in_range`, passes `ge`/`gt`, never fails `not_nullable`). A column opts into
pandas' semantics ("NaN is null": NaN fails `not_nullable` and passes every value check) with
`pa.Column(..., metadata={"nan_is_null": True})` or `Validation(nan_is_null={"col"})`.
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
        nan_is_null: float columns where NaN counts as null (pandas' semantics), or True for
            every float column; by default NaN is a value, as in pandera's PySpark backend.
            A column can also say it itself: `pa.Column(..., metadata={"nan_is_null": True})`.
    """

    schema: Any
    blocking: bool | Iterable[str] = False
    depth: ValidationDepth | str | None = None
    sample_fraction: float | None = None
    failure_cases: int = 5
    nan_is_null: bool | Iterable[str] = False

    def __post_init__(self) -> None:
        if not isinstance(self.blocking, bool):
            object.__setattr__(self, "blocking", frozenset(self.blocking))
        if not isinstance(self.nan_is_null, bool):
            object.__setattr__(self, "nan_is_null", frozenset(self.nan_is_null))
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


def _row_holds(data: Any, sql: str) -> bool:
    """pandera's PySpark contract for a `row_check`: True when no row fails the predicate (one
    Spark job). Only pandera's own `validate` calls it: this package fuses the predicate."""
    from pyspark.sql import functions as F

    df = getattr(data, "dataframe", data)  # a column object, or the DataFrame itself
    return bool(df.filter(~F.expr(sql)).limit(1).count() == 0)


def row_check(
    sql: str,
    *,
    name: str,
    error: str | None = None,
    raise_warning: bool = False,
) -> Any:
    """A pandera `Check` that holds on a row when the Spark SQL predicate `sql` is true.

    Use it for custom rules (on a column, or in `DataFrameSchema(checks=[...])` for rules over
    several columns, e.g. `row_check("start_date <= end_date", name="ordered_dates")`). Unlike a
    check function returning one boolean, it is evaluated in the fused pass: no Spark job of
    its own, failing rows counted, failure cases shown. pandera's own `validate` runs it too.
    A row where the predicate is null passes, as pandera's built-in checks treat nulls.
    """
    import pandera.pyspark as pa

    return pa.Check(_row_holds, name=name, error=error or sql, raise_warning=raise_warning, sql=sql)


def _is_row_check(check: Any) -> bool:
    return getattr(check, "_check_fn", None) is _row_holds


_FLOAT_TYPES = ("float", "double")


def _nan_aware(column: str, types: Mapping[str, Any] | None) -> bool:
    """Whether NaN can occur in a column (a float or double column of the output)."""
    dtype = (types or {}).get(column)
    return dtype is not None and dtype.typeName() in _FLOAT_TYPES


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
    kind: str  # columns | nullable | builtin | row | unique | custom | drift | pandas
    description: str
    severity: AssetCheckSeverity
    blocking: bool
    column: str | None = None
    check: Any = None  # the pandera Check, for "builtin", "row" and "custom"
    nan_is_null: bool = False

    @property
    def row_level(self) -> bool:
        """Evaluated row by row in the fused pass (a failing-row predicate)."""
        return self.kind in {"nullable", "builtin", "row"}

    def failure_expr(self, types: Mapping[str, Any] | None = None) -> Column | None:
        """The Spark expression that is true on a failing row (row-level checks only); null
        (a null value) never fails a value check. `types`: the output's column types, for
        the NaN semantics of float columns."""
        from pyspark.sql import functions as F

        nan = self.nan_is_null and self.column is not None and _nan_aware(self.column, types)
        if self.kind == "nullable" and self.column:
            c = F.col(self.column)
            return (c.isNull() | F.isnan(c)) if nan else c.isNull()
        if self.kind == "row":
            return ~F.expr(self.check._check_kwargs["sql"])
        if self.kind == "builtin" and self.column:
            expr = _builtin_failure(self.check.name, self.column, self.check._check_kwargs)
            if expr is not None and nan:  # NaN is null: it passes every value check
                expr = expr & ~F.isnan(F.col(self.column))
            return expr
        return None

    def case_columns(self, available: Sequence[str]) -> list[str]:
        """The columns shown in a failure case: the check's column, or those a dataframe-level
        predicate names (every column when it names none recognisably)."""
        if self.column is not None:
            return [self.column]
        if self.kind == "row":
            words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", self.check._check_kwargs["sql"]))
            named = [c for c in available if c in words]
            return named or list(available)
        return []


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
        *,
        nan_is_null: bool = False,
    ) -> None:
        name = _spec_name(raw_name)
        base, n = name, 2
        while name in used:
            name, n = f"{base}_{n}", n + 1
        used.add(name)
        blocks = is_blocking(name, severity)
        if nan_is_null and kind == "builtin":  # in the description, so in the cache key
            description += " (NaN as null)"
        checks.append(
            PlannedCheck(name, kind, description, severity, blocks, column, check, nan_is_null)
        )

    error, warn = AssetCheckSeverity.ERROR, AssetCheckSeverity.WARN
    if engine in IN_MEMORY_ENGINES:
        add("pandas", "schema__pandera", f"pandera schema {schema.name or ''}".strip(), error)
        return CheckPlan(asset_key, factory, validation, schema, engine, tuple(checks))

    add("columns", SCHEMA_CHECK, "every schema column is present with its dtype", error)
    nan_columns = validation.nan_is_null
    for name, column in schema.columns.items():
        nan = (nan_columns if isinstance(nan_columns, bool) else name in nan_columns) or bool(
            (column.metadata or {}).get("nan_is_null")
        )
        if not column.nullable:
            what = f"{name} has no nulls" + (" (NaN counts as null)" if nan else "")
            add("nullable", f"{name}__not_nullable", what, error, name, nan_is_null=nan)
        for check in column.checks:
            severity = warn if check.raise_warning else error
            kind = (
                "row"
                if _is_row_check(check)
                else "builtin"
                if check.name in SPARK_BUILTINS
                else "custom"
            )
            add(
                kind,
                f"{name}__{check.name}",
                f"{name}: {_check_label(check)}",
                severity,
                name,
                check,
                nan_is_null=nan,
            )
    if schema.unique:
        cols = [schema.unique] if isinstance(schema.unique, str) else list(schema.unique)
        add("unique", f"unique__{'__'.join(cols)}", f"rows unique on {cols}", error, ",".join(cols))
    for check in schema.checks:
        severity = warn if check.raise_warning else error
        add(
            "row" if _is_row_check(check) else "custom",
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


ROWS = "__rows"
"""Observed during the write: the output's row count."""
FAILED_ANY = "__failed_any"
"""Observed during the write: rows failing at least one row-level check."""


def _row_predicates(
    plan: CheckPlan, df: DataFrame, broken: dict[str, str] | None = None
) -> list[tuple[int, PlannedCheck, Column]]:
    """(index, check, failure predicate) of every row-level check Spark can analyse on `df`;
    the others are recorded in `broken` with the reason (a missing column, a wrong type)."""
    types = {f.name: f.dataType for f in df.schema.fields}
    candidates: list[tuple[int, PlannedCheck, Column]] = []
    for i, check in enumerate(plan.checks):
        if not check.row_level:
            continue
        if check.column is not None and check.column not in types:
            if broken is not None:
                broken[check.name] = f"column {check.column!r} is missing from the output"
            continue
        try:
            expr = check.failure_expr(types)
        except Exception as exc:
            if broken is not None:
                broken[check.name] = f"cannot evaluate on this output: {exc}".split("\n")[0]
            continue
        if expr is not None:
            candidates.append((i, check, expr))
    if not candidates:
        return []
    try:  # one analysis for all (no Spark job); one per predicate only to find the bad ones
        df.select(*[e.alias(f"probe{n}") for n, (_, _, e) in enumerate(candidates)])
        return candidates
    except Exception:
        pass
    found: list[tuple[int, PlannedCheck, Column]] = []
    for i, check, expr in candidates:
        try:
            df.select(expr.alias("probe"))
        except Exception as exc:
            if broken is not None:
                broken[check.name] = f"cannot evaluate on this output: {exc}".split("\n")[0]
            continue
        found.append((i, check, expr))
    return found


def observed_exprs(plan: CheckPlan, df: DataFrame) -> tuple[list[Column], dict[str, str]]:
    """The two aggregates `DataFrame.observe` computes during the write: the row count and the
    rows failing any row-level check (one OR of every predicate, nulls as passing).

    One aggregate per check made the observed write cost about twice the plain write: each
    observed aggregate is updated row by row outside whole-stage code generation. Per-check
    counts are computed afterwards, over the stored version, only when a row failed.
    Returns the expressions and, for checks Spark cannot analyse on this output, the error.
    """
    from functools import reduce

    from pyspark.sql import functions as F

    broken: dict[str, str] = {}
    predicates = _row_predicates(plan, df, broken)
    exprs = [F.count(F.lit(1)).alias(ROWS)]
    if predicates:
        failed = reduce(lambda a, b: a | b, [F.coalesce(e, F.lit(False)) for _, _, e in predicates])
        exprs.append(F.count_if(failed).alias(FAILED_ANY))
    return exprs, broken


def unique_proofs(plan: CheckPlan, df: DataFrame) -> dict[str, str]:
    """Uniqueness checks that `df`'s Spark plan proves (check name -> why): they need no
    Spark job (see `unique_proof`). Pass `df` as the Factory returned it: a stored version
    read back from files proves nothing."""
    from pysetl_dagster.checks.unique_proof import proved_unique

    proofs: dict[str, str] = {}
    for check in plan.checks:
        if check.kind == "unique":
            reason = proved_unique(df, (check.column or "").split(","))
            if reason is not None:
                proofs[check.name] = reason
    return proofs


def evaluate(
    plan: CheckPlan,
    written: DataFrame,
    observed: Mapping[str, Any],
    *,
    broken: Mapping[str, str] | None = None,
    previous_schema: Any = None,
    sample_fraction: float | None = None,
    proved: Mapping[str, str] | None = None,
) -> list[CheckOutcome]:
    """Outcomes of every planned check on `written` (the stored version, read back lazily).

    `observed` holds what was observed during the write (`__rows`, `__failed_any`); when it
    says no row failed, row-level checks need no Spark job (nor any analysis of their
    predicates: `broken` then already says which could not be evaluated). Otherwise, and for
    uniqueness, one fused query over the stored version (see `_fused_pass`): at most two Spark
    jobs. `proved`: uniqueness checks the Factory's plan proves (`unique_proofs`), not
    computed. Opaque custom checks run one at a time, as pandera runs them.
    """
    broken = dict(broken or {})
    proved = dict(proved or {})
    rows = observed.get(ROWS)
    failed_any = observed.get(FAILED_ANY)
    nothing_failed = failed_any is not None and int(failed_any) == 0
    predicates = [] if nothing_failed else _row_predicates(plan, written, broken)
    need_counts = bool(predicates)
    uniques = [
        c
        for c in plan.checks
        if c.kind == "unique" and c.name not in broken and c.name not in proved
    ]
    sampled = sample_fraction is not None and 0 < sample_fraction < 1
    fused = _fused_pass(
        written,
        predicates if need_counts else [],
        [] if sampled else uniques,
        plan.validation.failure_cases,
        count_rows=rows is None,
    )
    if sampled and uniques:  # uniqueness on a sample: its own query
        sample = _sampled(written, sample_fraction)
        fused.update(_fused_pass(sample, [], uniques, 5, count_rows=False))
    if rows is None:
        rows = fused.get(ROWS)
    rows = int(rows) if rows is not None else None

    outcomes: list[CheckOutcome] = []
    for i, check in enumerate(plan.checks):
        if check.name in broken:
            outcomes.append(CheckOutcome(check, False, message=broken[check.name]))
        elif check.kind == "columns":
            outcomes.append(_columns_outcome(check, plan.schema, written))
        elif check.row_level:
            failing = int(fused.get(f"__c{i}", 0) or 0) if need_counts else 0
            cases = fused.get(f"__cases{i}", [])
            outcome = CheckOutcome(check, failing == 0, failing, rows, failure_cases=cases)
            if failing:
                outcome.message = f"{failing} of {rows} row(s) fail {check.description}"
            outcomes.append(outcome)
        elif check.kind == "unique" and check.name in proved:
            outcome = CheckOutcome(check, True, 0, rows)
            outcome.extra["duplicate_groups"] = MetadataValue.int(0)
            outcome.extra["evaluated_by"] = MetadataValue.text(proved[check.name])
            outcomes.append(outcome)
        elif check.kind == "unique":
            outcomes.append(_unique_outcome(check, fused, rows, sampled))
        elif check.kind == "custom":
            outcomes.append(_custom_outcome(check, _sampled(written, sample_fraction), rows))
        elif check.kind == "drift":
            outcomes.append(drift_outcome(check, previous_schema, written.schema))
    return outcomes


_CASE_SALTS = 3
"""Failure cases are picked by min_by and max_by over salted hashes: up to twice this many
examples (two distinct ones whenever two exist) in bounded memory, deterministic for the same
data; no collect_list of every failing row."""


def _fused_pass(
    df: DataFrame,
    predicates: Sequence[tuple[int, PlannedCheck, Column]],
    uniques: Sequence[PlannedCheck],
    per_check: int,
    *,
    count_rows: bool = True,
) -> dict[str, Any]:
    """One query over `df`, run as a no-op write so that every part is an observation of a
    single action, each part reading only the columns it needs:

    - failing rows: the rows failing any row-level check are filtered first (one codegen'd
      OR of the predicates, each evaluated once per row), and only those rows are observed:
      per-check failing rows and up to `per_check` failure cases. Observed aggregates are
      updated row by row outside code generation, so observing every row (as before) cost
      several times the filter.
    - uniqueness: `groupBy(keys).count() > 1`, observed after the shuffle (the key columns
      only).

    The two parts are branches of one `union` (the files are scanned once per branch).
    Spark jobs: 1 without uniqueness, 2 with it (its shuffle's map stage), 0 when there is
    nothing to compute. `count_rows`: also count every row (when the caller does not know
    the row count already)."""
    from functools import reduce

    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    if not predicates and not uniques:
        return {}
    keys = [k for c in uniques for k in (c.column or "").split(",")]
    rows_seen, failing_seen, dups_seen = Observation(), Observation(), Observation()
    picks = [(k, pick) for k in range(_CASE_SALTS) for pick in (F.min_by, F.max_by)]
    branches: list[DataFrame] = []
    if predicates:
        shown = {i: check.case_columns(df.columns) for i, check, _ in predicates}
        needed = list(dict.fromkeys(col for cols in shown.values() for col in cols))
        flags = {i: F.coalesce(expr, F.lit(False)) for i, _, expr in predicates}
        # the flags in the projection over the scan: codegen'd, each predicate once per row,
        # and the scan reads only the columns they and the failure cases name
        scan = df.select(
            *[F.col(c) for c in needed], *[flag.alias(f"__f{i}") for i, flag in flags.items()]
        )
        if count_rows:
            scan = scan.observe(rows_seen, F.count(F.lit(1)).alias(ROWS))
        failing = scan.where(reduce(lambda a, b: a | b, [F.col(f"__f{i}") for i in flags]))
        aggregates = []
        for i, _, _ in predicates:
            flag = F.col(f"__f{i}")
            cols = shown[i]
            value = F.col(cols[0]) if len(cols) == 1 else F.struct(*[F.col(c) for c in cols])
            aggregates.append(F.count_if(flag).alias(f"__c{i}"))
            for n, (k, pick) in enumerate(picks if per_check > 0 else []):
                order = F.when(flag, F.xxhash64(value, F.lit(k)))
                aggregates.append(pick(F.when(flag, value), order).alias(f"__k{i}_{n}"))
        branches.append(failing.observe(failing_seen, *aggregates).select(F.lit(0).alias("_")))
    if uniques:
        scan = df.select(*[F.col(k) for k in keys])
        if count_rows and not predicates:
            scan = scan.observe(rows_seen, F.count(F.lit(1)).alias(ROWS))
        counted = scan.groupBy(*keys).agg(F.count(F.lit(1)).alias("__n")).where("__n > 1")
        example = F.struct(*[F.col(k) for k in keys], F.col("__n").alias("count"))
        observed = counted.observe(
            dups_seen,
            F.count(F.lit(1)).alias("__groups"),
            F.sum("__n").alias("__dup_rows"),
            *[
                pick(example, F.xxhash64(*[F.col(c) for c in keys], F.lit(k))).alias(f"__u{n}")
                for n, (k, pick) in enumerate(picks)
            ],
        )
        branches.append(observed.select(F.lit(0).alias("_")))
    query = reduce(lambda a, b: a.unionAll(b), branches)
    query.write.format("noop").mode("overwrite").save()
    found: dict[str, Any] = {}
    if count_rows:
        found[ROWS] = rows_seen.get.get(ROWS)
    if predicates:
        seen = failing_seen.get
        for i, check, _ in predicates:
            found[f"__c{i}"] = seen.get(f"__c{i}") or 0
            values = [seen.get(f"__k{i}_{n}") for n in range(len(picks) if per_check > 0 else 0)]
            cases = _distinct_cases(values, shown[i], check.column)
            if check.kind == "nullable" and per_check > 0 and seen.get(f"__c{i}"):
                cases = cases or [{"column": check.column, "value": None}]  # the value is null
            found[f"__cases{i}"] = cases[:per_check]
    if uniques:
        seen = dups_seen.get
        found["__groups"] = seen.get("__groups") or 0
        found["__dup_rows"] = seen.get("__dup_rows") or 0
        examples = [seen.get(f"__u{n}") for n in range(len(picks))]
        found["__unique_cases"] = _distinct_cases(examples, [*keys, "count"], None)[:per_check]
    return found


def _distinct_cases(
    values: Sequence[Any], columns: Sequence[str], column: str | None
) -> list[dict[str, Any]]:
    """Failure cases as records: `{"column", "value"}` for a column's check, the named columns'
    values for a row (struct) check; duplicates and nulls (fewer failures than salts) out."""
    cases: list[dict[str, Any]] = []
    for value in values:
        if value is None:
            continue
        if column is not None and len(columns) == 1:
            record = {"column": column, "value": _cell(value)}
        elif hasattr(value, "asDict"):
            record = {k: _cell(v) for k, v in value.asDict().items()}
        else:
            record = {columns[0]: _cell(value)}
        if record not in cases:
            cases.append(record)
    return cases


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


def _unique_outcome(
    check: PlannedCheck, fused: Mapping[str, Any], rows: int | None, sampled: bool
) -> CheckOutcome:
    """Rows whose key occurs more than once (as pandas counts duplicates, keep=False)."""
    cols = (check.column or "").split(",")
    groups = int(fused.get("__groups") or 0)
    dup_rows = int(fused.get("__dup_rows") or 0)
    outcome = CheckOutcome(check, groups == 0, dup_rows, rows)
    outcome.extra["duplicate_groups"] = MetadataValue.int(groups)
    if groups:
        outcome.message = f"{groups} value(s) of {cols} occur more than once ({dup_rows} rows)"
        if sampled:
            outcome.message += " in the sample"
        outcome.failure_cases = list(fused.get("__unique_cases") or [])
    return outcome


def _custom_outcome(check: PlannedCheck, df: DataFrame, rows: int | None) -> CheckOutcome:
    """A check function returning one boolean (pandera's PySpark contract), called as pandera's
    backend calls it, without the rest of pandera's validation (dtype and nullability work).
    It says pass or fail, not which rows: the outcome says so, and how to get counts."""
    from pandera.backends.pyspark.checks import PySparkCheckBackend

    try:
        result = PySparkCheckBackend(check.check)(df, check.column)
        passed = bool(result.check_passed)
        message = "" if passed else f"{check.description}: the check returned False"
    except Exception as exc:  # the user's function failed: report it as this check's failure
        passed = False
        detail = str(exc).strip().splitlines()
        message = f"{check.description}: raised {type(exc).__name__}: {detail[0] if detail else ''}"
    outcome = CheckOutcome(check, passed, 0 if passed else None, rows, message)
    outcome.extra["evaluated_by"] = MetadataValue.text(
        "pandera pyspark check backend (a boolean check: declare it with "
        "pysetl_dagster.checks.plan.row_check to count failing rows)"
    )
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
