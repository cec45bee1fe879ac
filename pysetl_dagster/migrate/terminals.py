"""The DataFrame reader and writer methods that name a path or a table as their first argument.

One home for what counts as a read or a write: the analysis links a path written then read
back, the parameters turn those literals into Config, and `--verify` maps the same methods'
paths into its sandbox.
"""

from __future__ import annotations

import ast

READ_TERMINALS = frozenset({"csv", "parquet", "json", "orc", "text", "load", "table"})
WRITE_TERMINALS = frozenset(
    {"save", "saveAsTable", "insertInto", "parquet", "csv", "json", "orc", "text"}
)
TABLE_TERMINALS = frozenset({"table", "saveAsTable", "insertInto"})
PATH_TERMINALS = (READ_TERMINALS | WRITE_TERMINALS) - TABLE_TERMINALS


def attr_chain(node: ast.AST) -> list[str]:
    """`spark.read.format("csv").load` -> ["spark", "read", "format", "load"] (calls and
    subscripts skipped): how analysis, findings and whole-script mode name a call."""
    parts: list[str] = []
    while True:
        if isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Subscript):
            node = node.value
        elif isinstance(node, ast.Name):
            parts.append(node.id)
            break
        else:
            break
    return list(reversed(parts))
