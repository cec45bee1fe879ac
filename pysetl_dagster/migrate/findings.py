"""Constructs a reader of the migration must hear about, found in the whole source.

Nothing a script does may change silently: a collected result, a `toPandas()`, a `print` of
data, a dynamic import, a `global`, RDD code, a UDF registration, the session it builds and the
`stop()` that ends it each get one line in the report, saying what the migration did with it.
The summary counts them by kind.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from .terminals import attr_chain as _chain

COLLECTING = {"collect", "toPandas", "toLocalIterator", "first", "take", "head", "tail"}
PRINTED_DATA = COLLECTING | {"count", "agg", "describe", "summary", "show", "columns", "dtypes"}
RDD_METHODS = {
    "parallelize",
    "textFile",
    "wholeTextFiles",
    "reduceByKey",
    "flatMap",
    "mapPartitions",
    "saveAsTextFile",
    "groupByKey",
    "sortByKey",
}
SPARK_RECEIVER = re.compile(r"(^|\.)(\w*spark\w*|sc|ss|session|sparkContext)$", re.IGNORECASE)


@dataclass(frozen=True)
class Finding:
    """One construct of the source and what the migration did with it."""

    line: int
    kind: str  # e.g. "collect()", "print of data", "dynamic import", "global", "RDD"
    code: str  # the construct, shortened
    action: str  # what happened to it


def _short(node: ast.AST) -> str:
    text = ast.unparse(node).splitlines()[0] if not isinstance(node, ast.Module) else ""
    return text if len(text) <= 70 else text[:67] + "..."


def is_spark_stop(node: ast.AST) -> bool:
    """`spark.stop()`, `sc.stop()`, `spark.sparkContext.stop()`: a call that ends the session
    (the pipeline's Spark resource owns it)."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return False
    if node.func.attr != "stop" or node.args or node.keywords:
        return False
    receiver = ast.unparse(node.func.value)
    return bool(SPARK_RECEIVER.search(receiver))


def is_context_constructor(node: ast.AST) -> bool:
    """`SparkContext(...)`, `pyspark.SparkContext(...)`: a second context cannot start inside
    a run that has one; the pipeline uses `SparkContext.getOrCreate()`."""
    return (
        isinstance(node, ast.Call)
        and _chain(node.func)[-1:] == ["SparkContext"]
        and not isinstance(node.func, ast.Subscript)
    )


def scan(tree: ast.Module, *, whole_script: bool, factory: str = "") -> list[Finding]:
    """Every construct of `tree` the report must name; `whole_script`: the script runs as
    one Factory (`factory`), so driver-side code is kept and runs as in the script."""
    kept = f"kept: runs in {factory} on the driver, as in the script"
    found: dict[tuple[int, str], Finding] = {}

    def add(node: ast.AST, kind: str, action: str) -> None:
        line = getattr(node, "lineno", 0)
        found.setdefault((line, kind), Finding(line, kind, _short(node), action))

    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            add(node, "global", kept if whole_script else "reported")
            continue
        if not isinstance(node, ast.Call):
            continue
        chain = _chain(node)
        last = chain[-1] if chain else ""
        if last == "import_module" or last == "__import__":
            add(node, "dynamic import", kept + "; the module is found from the script's folder")
        elif last in {"collect", "toPandas", "toLocalIterator"}:
            add(node, f"{last}()", kept if whole_script else "brings rows to the driver")
        elif last == "register" and "udf" in chain:
            add(node, "UDF registration", "kept (registered on the pipeline's session)")
        elif last in {"udf", "pandas_udf"}:
            add(node, "UDF", "kept (Python UDF, runs on the executors)")
        elif last in RDD_METHODS or "rdd" in chain[:-1]:
            add(node, "RDD", kept if whole_script else "RDD code")
        elif last == "enableHiveSupport":
            add(
                node,
                "enableHiveSupport()",
                "the pipeline's Spark resource gets spark.sql.catalogImplementation=hive",
            )
        elif "builder" in chain and last in {"getOrCreate", "create"}:
            add(
                node,
                "session builder",
                "the pipeline's Spark resource provides the session; its .config() pairs "
                "are the resource's spark_config",
            )
        elif is_spark_stop(node):
            add(node, "stop()", "dropped: the Spark resource stops the session when the run ends")
        elif is_context_constructor(node):
            add(node, "SparkContext()", "becomes SparkContext.getOrCreate() (the run's context)")
        elif last == "print" and any(
            isinstance(sub, ast.Call) and _chain(sub)[-1:] and _chain(sub)[-1] in PRINTED_DATA
            for arg in node.args
            for sub in ast.walk(arg)
        ):
            add(
                node,
                "print of data",
                kept + " (its output goes to the run's logs)"
                if whole_script
                else "the printed value is the script's output",
            )
    return sorted(found.values(), key=lambda f: (f.line, f.kind))
