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
