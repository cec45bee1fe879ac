"""The files migrated together: which are drivers and which the job modules they run.

A project of the shape `main.py --job NAME` + `jobs/<name>.py` has one entry (the driver) and
modules with none (`def run_job(spark, config)`): the driver is migrated, its job modules are
migrated with it (they run inside its Factory) and are not reported as scripts without an
entry point. A module belongs to a driver when the driver imports it statically
(`from jobs import orders`, `import jobs.orders`) or dynamically by a name prefix
(`importlib.import_module(f"jobs.{name}")`, `__import__("jobs." + name)`).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from .terminals import WRITE_TERMINALS

PANDAS_SINKS = {"to_csv", "to_parquet", "to_json", "to_excel", "to_orc", "to_feather"}


def _parse(path: Path) -> ast.Module | None:
    try:
        if path.suffix == ".ipynb":
            from .notebook import notebook_script

            return ast.parse(notebook_script(path)[0])
        return ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, ValueError, OSError):
        return None


def imported_names(tree: ast.Module) -> tuple[set[str], set[str]]:
    """(dotted modules imported statically, prefixes imported dynamically)."""
    static: set[str] = set()
    prefixes: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            static |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            static.add(node.module)
            static |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Call) and node.args:
            func = ast.unparse(node.func)
            if not func.endswith(("import_module", "__import__")):
                continue
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                static.add(arg.value)
            elif isinstance(arg, ast.JoinedStr) and arg.values:
                head = arg.values[0]
                if isinstance(head, ast.Constant) and isinstance(head.value, str):
                    prefixes.add(head.value)
            elif isinstance(arg, ast.BinOp) and isinstance(arg.left, ast.Constant):
                prefixes.add(str(arg.left.value))
            else:
                prefixes.add("")  # any module of the project
    # importing `helpers.session` imports the package `helpers` (its `__init__.py`) first
    static |= {".".join(m.split(".")[:k]) for m in static for k in range(1, m.count(".") + 1)}
    return static, prefixes


@dataclass
class Project:
    """Drivers and the modules they import, among the files of one migration."""

    drivers: dict[Path, Path] = field(default_factory=dict)  # module -> its driver

    @classmethod
    def of(cls, paths: list[Path]) -> Project:
        project = cls()
        for driver in paths:
            tree = _parse(driver)
            if tree is None:
                continue
            static, prefixes = imported_names(tree)
            for module in paths:
                if module == driver or module.suffix != ".py":
                    continue
                try:
                    relative = module.resolve().relative_to(driver.resolve().parent)
                except ValueError:
                    continue
                parts = list(relative.with_suffix("").parts)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                dotted = ".".join(parts)
                if not dotted:
                    continue
                if dotted in static or any((dotted + ".").startswith(p) for p in prefixes):
                    project.drivers.setdefault(module, driver)
        return project

    def driver_of(self, path: Path) -> Path | None:
        return self.drivers.get(path)


def _opens_for_writing(node: ast.Call) -> bool:
    """`open(path, "w")` / `open(path, mode="a")`: the script writes a file itself (a report
    of collected results, a JSON summary)."""
    if not (isinstance(node.func, ast.Name) and node.func.id == "open"):
        return False
    mode = node.args[1] if len(node.args) > 1 else None
    for keyword in node.keywords:
        if keyword.arg == "mode":
            mode = keyword.value
    return (
        isinstance(mode, ast.Constant)
        and isinstance(mode.value, str)
        and any(c in mode.value for c in "wax")
    )


def _writes(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _opens_for_writing(node):
            return True
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        attr = node.func.attr
        text = ast.unparse(node.func.value)
        if attr in {"saveAsTable", "insertInto", "saveAsTextFile", "saveAsPickleFile"}:
            return True
        if attr in PANDAS_SINKS and node.args:
            return True
        if attr in WRITE_TERMINALS and (".write" in text or text.endswith("write")):
            return True
        if attr in {"save", "parquet", "csv", "json", "orc", "text"} and "write" in text:
            return True
        if attr == "sql" and node.args and isinstance(node.args[0], ast.Constant):
            query = str(node.args[0].value).lstrip().lower()
            if query.startswith(("insert", "create table", "create or replace table")):
                return True
    return False


def has_sink(script: Path, tree: ast.Module, local_modules: list[str]) -> bool:
    """Whether running the script writes data: a write in the script, or in the project's own
    modules it imports (a driver's job modules write, the driver does not)."""
    if _writes(tree):
        return True
    folder = script.parent
    static, prefixes = imported_names(tree)
    roots = {m.split(".")[0] for m in static} | {p.split(".")[0] for p in prefixes if p}
    if "" in prefixes:  # a module named at run time: any of the project's
        roots |= {p.stem if p.suffix == ".py" else p.name for p in folder.iterdir()}
    for root in sorted(roots | set(local_modules)):
        candidates = [folder / f"{root}.py", *sorted((folder / root).rglob("*.py"))]
        for candidate in candidates:
            if candidate.is_file():
                sub = _parse(candidate)
                if sub is not None and _writes(sub):
                    return True
    return False
