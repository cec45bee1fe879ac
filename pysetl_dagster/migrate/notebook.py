"""Jupyter notebooks as scripts: code cells joined, magics and shell lines kept as comments.

Line numbers of the joined script map back to `cell N, line M` for the report. Commenting a
magic out (instead of deleting it) keeps every other line where it was.
"""

from __future__ import annotations

from pathlib import Path

import nbformat


def notebook_script(path: Path) -> tuple[str, dict[int, str], list[str]]:
    """(script text, script line -> "cell N, line M", notes about skipped lines)."""
    notebook = nbformat.read(str(path), as_version=4)
    lines: list[str] = []
    where: dict[int, str] = {}
    notes: list[str] = []
    code_cell = 0
    for cell_index, cell in enumerate(notebook.cells, start=1):
        if cell.cell_type != "code":
            continue
        code_cell += 1
        source = cell.source.splitlines()
        cell_magic = bool(source) and source[0].lstrip().startswith("%%")
        for line_no, line in enumerate(source, start=1):
            stripped = line.lstrip()
            if stripped.startswith(("%", "!")) or (cell_magic and line_no == 1):
                notes.append(
                    f"cell {cell_index}, line {line_no}: `{stripped}` is an IPython magic or "
                    "shell line: skipped"
                )
                line = f"# [skipped] {stripped}"
            lines.append(line)
            where[len(lines)] = f"cell {cell_index}, line {line_no}"
        lines.append("")
    return "\n".join(lines) + "\n", where, notes


DATABRICKS_HEADER = "# Databricks notebook source"
_CELL = "# COMMAND ----------"
_RUNTIME_NAMES = {
    # what a Databricks cluster defines before the first cell, as plain PySpark
    "spark": "spark = SparkSession.builder.getOrCreate()",
    "sc": "sc = spark.sparkContext",
}


def is_databricks_source(text: str) -> bool:
    """Whether `text` is a notebook exported from Databricks as a `.py` source file."""
    return text.lstrip("\ufeff").startswith(DATABRICKS_HEADER)


def databricks_script(text: str) -> tuple[str, dict[int, str], list[str]]:
    """(script text, script line -> "cell N, line M", notes) for a Databricks `.py` export.

    Its cells run on a cluster that has already defined `spark` (and `sc`): the script gets
    the same names first, from a session of its own (`SparkSession.builder.getOrCreate()`),
    so it runs under `python` and migrates like a script that builds its session. Cells in
    another language (`# MAGIC %sql`, `%scala`, `%sh`, `%fs`, `%pip`, `%run`) are comments
    to Python: each is noted, not run; `%md` cells are documentation."""
    import ast

    from pysetl_dagster.migrate.checks import assigned_or_imported

    lines = text.splitlines()
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return text, {}, []  # the syntax error is reported by the analysis
    bound = assigned_or_imported(tree)
    read = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    needed = [name for name in _RUNTIME_NAMES if name in read and name not in bound]
    if "sc" in needed and "spark" not in needed and "spark" not in bound:
        needed.insert(0, "spark")
    prelude = ["from pyspark.sql import SparkSession"] if needed else []
    prelude += [_RUNTIME_NAMES[name] for name in needed]
    notes = (
        [
            "a Databricks notebook: "
            + ", ".join(f"`{n}`" for n in needed)
            + " (defined by the cluster) come from `SparkSession.builder.getOrCreate()`, "
            "the run's session in the pipeline"
        ]
        if needed
        else []
    )
    where = {n: "the cluster's names, before cell 1" for n in range(1, len(prelude) + 1)}
    cell, line_in_cell = 1, 0
    for number, line in enumerate(lines, start=1):
        if line.strip() == _CELL:
            cell, line_in_cell = cell + 1, 0
            continue
        line_in_cell += 1
        where[number + len(prelude)] = f"cell {cell}, line {line_in_cell}"
        magic = line.strip()[len("# MAGIC ") :].strip() if line.startswith("# MAGIC %") else ""
        if magic and not magic.startswith("%md"):
            notes.append(
                f"cell {cell}: `{magic}` is a Databricks magic cell (a comment to Python): "
                "not run by the script nor the pipeline; rewrite it in Python (`spark.sql(...)` "
                "for SQL) to keep it"
            )
    return "\n".join([*prelude, *lines]) + "\n", where, notes
