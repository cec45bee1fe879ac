"""Infer a pandera schema from an asset's stored output: `pysetl-dagster schema infer ASSET`.

Statistics of every column (nulls, min and max, string lengths, approximate distinct counts)
come from one Spark aggregation over the stored Parquet; only string columns that look
categorical (at most `max_categories` distinct values) take a second, small job for their
values. Nothing else is collected. The result is a `pandera.pyspark` schema, written as a
`DataFrameModel` (Python) or pandera's YAML, that the same data passes.
"""

from __future__ import annotations

import datetime
import decimal
import re
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

_ORDERED = (T.NumericType, T.DateType, T.TimestampType)


@dataclass
class ColumnProfile:
    """What one pass over the data says about one column."""

    name: str
    dtype: T.DataType
    nulls: int
    minimum: Any = None
    maximum: Any = None
    min_length: int | None = None
    max_length: int | None = None
    distinct: int = 0
    categories: list[Any] = field(default_factory=list)


def profile(df: DataFrame, max_categories: int = 20) -> list[ColumnProfile]:
    """Profile every column of `df` (one Spark job, plus one for categorical strings)."""
    aggs: list[Any] = []
    for f in df.schema.fields:
        c = F.col(f"`{f.name}`")
        aggs.append(F.sum(F.when(c.isNull(), 1).otherwise(0)).alias(f"{f.name}__nulls"))
        aggs.append(F.approx_count_distinct(c).alias(f"{f.name}__distinct"))
        if isinstance(f.dataType, _ORDERED):
            aggs += [F.min(c).alias(f"{f.name}__min"), F.max(c).alias(f"{f.name}__max")]
        elif isinstance(f.dataType, T.StringType):
            aggs += [
                F.min(F.length(c)).alias(f"{f.name}__minlen"),
                F.max(F.length(c)).alias(f"{f.name}__maxlen"),
            ]
    row = df.agg(*aggs).first()
    stats = row.asDict() if row else {}
    profiles = [
        ColumnProfile(
            f.name,
            f.dataType,
            int(stats.get(f"{f.name}__nulls") or 0),
            stats.get(f"{f.name}__min"),
            stats.get(f"{f.name}__max"),
            stats.get(f"{f.name}__minlen"),
            stats.get(f"{f.name}__maxlen"),
            int(stats.get(f"{f.name}__distinct") or 0),
        )
        for f in df.schema.fields
    ]
    categorical = [
        p
        for p in profiles
        if isinstance(p.dtype, T.StringType) and 0 < p.distinct <= max_categories
    ]
    if categorical:
        # approx_count_distinct errs by a few percent: fetch at most max_categories + 1 values
        # and keep the column categorical only if that many were not reached.
        values = df.agg(
            *[
                F.slice(
                    F.array_sort(F.collect_set(F.col(f"`{p.name}`"))), 1, max_categories + 1
                ).alias(p.name)
                for p in categorical
            ]
        ).first()
        for p in categorical:
            found = list(values[p.name]) if values else []
            if len(found) <= max_categories:
                p.categories = found
    return profiles


def inferred_schema(profiles: list[ColumnProfile], name: str) -> Any:
    """A `pandera.pyspark.DataFrameSchema` that the profiled data passes."""
    import pandera.pyspark as pa

    columns = {}
    for p in profiles:
        checks = []
        if p.categories:
            checks.append(pa.Check.isin(p.categories))
        elif p.min_length is not None and p.max_length is not None:
            checks.append(pa.Check.str_length(p.min_length, p.max_length))
        if p.minimum is not None and p.maximum is not None:
            checks.append(pa.Check.in_range(p.minimum, p.maximum))
        dtype: Any = p.dtype
        columns[p.name] = pa.Column(dtype, checks, nullable=p.nulls > 0)
    return pa.DataFrameSchema(columns, name=name)


def model_source(profiles: list[ColumnProfile], name: str) -> str:
    """The inferred schema as a `pandera.pyspark.DataFrameModel` class, ready to edit."""
    class_name = "".join(part.title() for part in re.split(r"[^A-Za-z0-9]+", name) if part)
    lines = [
        f'"""pandera schema inferred from the stored output of asset {name!r}."""',
        "",
        "import datetime  # noqa: F401",
        "from decimal import Decimal  # noqa: F401",
        "",
        "import pandera.pyspark as pa",
        "import pyspark.sql.types as T",
        "",
        "",
        f"class {class_name or 'Inferred'}Schema(pa.DataFrameModel):",
        f'    """Inferred from {name!r}: tighten or loosen the bounds as the data allows."""',
        "",
    ]
    for p in profiles:
        args = [f"nullable={p.nulls > 0}"]
        if p.categories:
            args.append(f"isin={p.categories!r}")
        elif p.min_length is not None and p.max_length is not None:
            args.append(f"str_length={{'min_value': {p.min_length}, 'max_value': {p.max_length}}}")
        if p.minimum is not None and p.maximum is not None:
            args.append(
                f"in_range={{'min_value': {_literal(p.minimum)}, "
                f"'max_value': {_literal(p.maximum)}}}"
            )
        field_name = p.name if p.name.isidentifier() else f"col_{abs(hash(p.name))}"
        alias = "" if field_name == p.name else f", alias={p.name!r}"
        lines.append(
            f"    {field_name}: T.{p.dtype!r} = pa.Field({', '.join(args)}{alias})"
            "  # type: ignore[valid-type]"
        )
    return "\n".join(lines) + "\n"


def schema_yaml(profiles: list[ColumnProfile], name: str) -> str:
    """The inferred schema as YAML in pandera's layout (pandera 0.35's PySpark `to_yaml` fails on
    any check statistics, so it is written here; read it back with `schema_from_yaml`)."""
    import yaml

    columns: dict[str, Any] = {}
    for p in profiles:
        checks: dict[str, Any] = {}
        if p.categories:
            checks["isin"] = {"allowed_values": list(p.categories)}
        elif p.min_length is not None and p.max_length is not None:
            checks["str_length"] = {"min_value": p.min_length, "max_value": p.max_length}
        if p.minimum is not None and p.maximum is not None:
            checks["in_range"] = {"min_value": _plain(p.minimum), "max_value": _plain(p.maximum)}
        columns[p.name] = {"dtype": p.dtype.json(), "nullable": p.nulls > 0, "checks": checks}
    document = {"schema_type": "dataframe", "api": "pyspark.sql", "name": name, "columns": columns}
    return str(yaml.safe_dump(document, sort_keys=False))


def schema_from_yaml(text: str) -> Any:
    """A `pandera.pyspark.DataFrameSchema` from `schema_yaml`'s output."""
    import json

    import pandera.pyspark as pa
    import yaml

    document = yaml.safe_load(text)
    columns = {}
    for name, spec in document["columns"].items():
        dtype: Any = T._parse_datatype_json_value(json.loads(spec["dtype"]))
        checks = [
            getattr(pa.Check, check)(**{k: _typed(v, dtype) for k, v in args.items()})
            for check, args in (spec.get("checks") or {}).items()
        ]
        columns[name] = pa.Column(dtype, checks, nullable=spec.get("nullable", True))
    return pa.DataFrameSchema(columns, name=document.get("name"))


def _plain(value: Any) -> Any:
    """A YAML-safe scalar: decimals as exact strings, dates as ISO strings."""
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def _typed(value: Any, dtype: T.DataType) -> Any:
    if isinstance(value, list):
        return value
    if isinstance(dtype, T.DecimalType):
        return decimal.Decimal(str(value))
    if isinstance(dtype, T.TimestampType):
        return datetime.datetime.fromisoformat(str(value))
    if isinstance(dtype, T.DateType):
        return datetime.date.fromisoformat(str(value))
    return value


def _literal(value: Any) -> str:
    if isinstance(value, decimal.Decimal):
        return f"Decimal({str(value)!r})"
    return repr(value)  # dates and datetimes repr as datetime.date(...) / datetime.datetime(...)
