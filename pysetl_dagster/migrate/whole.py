"""The whole script as one Factory: the migration that always holds.

When the statement-by-statement split cannot be proven safe (the script's entry point builds
its own session in a helper, dispatches to job modules by name, keeps accumulators across
scopes, collects rows to the driver...) or verifies different, the script becomes one Factory
whose `process()` runs the script's own code, in order, the way `python script.py ARGS` runs it:

* imports, functions, classes and constants that need nothing at import time stay at module
  level, verbatim (importing the package starts no Spark, parses no argv, reads no file);
* every other module statement and the body of the `__main__` block move, in order, into
  `run_script()`, whose `global` line keeps them module names (helpers that read them work);
* the Factory's Config holds the whole command line (`argv`, the `--args` given to the
  migration as its default); `sys.argv`, the script's folder on `sys.path` (its own and its
  job modules) and exit statuses behave as under `python`;
* session builders return the run's session (the Dagster Spark resource); their literal
  `.config()` pairs and `enableHiveSupport()` become the resource's `spark_config`; `stop()`
  is dropped (the resource stops the session); `SparkContext(...)` becomes `getOrCreate()`.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field
from pathlib import Path

import libcst as cst

from .analysis import Analysis
from .findings import SPARK_RECEIVER
from .naming_rules import camel
from .terminals import attr_chain as _chain

PURE_CALLS = {
    "dict",
    "list",
    "tuple",
    "set",
    "frozenset",
    "str",
    "int",
    "float",
    "bool",
    "range",
    "Path",
    "PurePath",
    "date",
    "datetime",
    "timedelta",
    "Decimal",
}


@dataclass
class Layout:
    """Where each top-level statement of the script goes."""

    future: list[cst.BaseStatement] = field(default_factory=list)
    module: list[cst.BaseStatement] = field(default_factory=list)  # imports, defs, constants
    flow: list[cst.BaseStatement] = field(default_factory=list)  # run_script()'s body
    globals_: list[str] = field(default_factory=list)
    local_modules: list[str] = field(default_factory=list)
    spark_config: dict[str, str] = field(default_factory=dict)


def factory_name(analysis: Analysis) -> str:
    """`RunDailyJob` for `daily_job.py`."""
    return "Run" + camel(analysis.name)


def _code(node: cst.CSTNode) -> str:
    return cst.Module(body=[]).code_for_node(node)


def _ast(node: cst.CSTNode) -> ast.Module:
    import textwrap

    return ast.parse(textwrap.dedent(_code(node)))


def _is_main_guard(node: cst.BaseStatement) -> bool:
    if not isinstance(node, cst.If):
        return False
    test = _code(node.test).replace("'", '"').replace(" ", "")
    return test in ('__name__=="__main__"', '"__main__"==__name__')


def local_module_names(script_dir: Path) -> set[str]:
    """Top-level modules and packages next to the script (its project's own code)."""
    names: set[str] = set()
    for entry in script_dir.iterdir() if script_dir.is_dir() else []:
        if entry.suffix == ".py" and entry.is_file():
            names.add(entry.stem)
        elif entry.is_dir() and not entry.name.startswith(".") and any(entry.glob("*.py")):
            names.add(entry.name)
    return names


def _installed(root: str) -> bool:
    """Whether the migration's Python finds the top-level module `root` (found, not run)."""
    import importlib.util

    try:
        return importlib.util.find_spec(root) is not None
    except (ImportError, ValueError):
        return False


def _imported_roots(tree: ast.Module) -> set[str]:
    roots: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            roots.add("." if node.level else (node.module or "").split(".")[0])
    return roots


def _bound_names(tree: ast.AST) -> set[str]:
    """Names a statement binds in its own scope (not inside functions, classes, lambdas or
    comprehensions it contains)."""
    names: set[str] = set()
    todo = list(ast.iter_child_nodes(tree))
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            names.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
            todo.extend(node.decorator_list)
            continue
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names if a.name != "*"}
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.NamedExpr):
            names.add(node.target.id)
        if isinstance(node, ast.Lambda | ast.ListComp | ast.SetComp | ast.DictComp):
            continue
        if isinstance(node, ast.GeneratorExp):
            continue
        todo.extend(ast.iter_child_nodes(node))
    return names


def _type_names(tree: ast.Module) -> set[str]:
    """Names imported from `pyspark.sql.types` (building a schema needs no session)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "pyspark.sql.types":
            names |= {a.asname or a.name for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.asname for a in node.names if a.name == "pyspark.sql.types" and a.asname}
    return names


def _is_constant(tree: ast.Module, known: set[str], types: set[str]) -> bool:
    """An assignment of a value computed from literals, names bound before it at module level
    and session-free constructors (schemas, paths): safe to evaluate at import."""
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Assign | ast.AnnAssign):
        return False
    stmt = tree.body[0]
    if stmt.value is None:
        return False
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
    if not all(isinstance(t, ast.Name | ast.Tuple) for t in targets):
        return False
    for node in ast.walk(stmt.value):
        if isinstance(node, ast.Name) and node.id not in known | types | PURE_CALLS:
            return False
        if isinstance(node, ast.Call):
            chain = _chain(node)
            root = chain[0] if chain else ""
            if not (
                root in types
                or (chain[-1:] and chain[-1] in PURE_CALLS and len(chain) == 1)
                or chain[:2] == ["os", "path"]
                or (root in {"T", "types"} and len(chain) == 2)
                or (
                    isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Constant)
                )
            ):
                return False
        if isinstance(node, ast.Lambda | ast.NamedExpr | ast.Await | ast.Yield):
            return False
    return True


def layout(analysis: Analysis) -> Layout:
    """Split the script's top-level statements into module level and `_run_script()`.

    A function or class whose definition reads a name only the flow binds (a default
    argument, a decorator, a class attribute computed from a config the flow loads) moves
    into the flow too, in its place: importing the package never evaluates it early."""
    out = Layout()
    module = analysis.module
    local = local_module_names(analysis.path.parent)
    types = _type_names(ast.parse(module.code))
    known: set[str] = set()
    body: list[cst.BaseStatement] = list(module.body)
    if body and _is_docstring(body[0]):
        body = body[1:]
    placed: list[tuple[cst.BaseStatement, str]] = []  # (node, "future" | "module" | "flow")
    for node in body:
        tree = _ast(node)
        if _is_main_guard(node):
            assert isinstance(node, cst.If)
            inner = node.body.body if isinstance(node.body, cst.IndentedBlock) else []
            placed += [(n, "flow") for n in inner]
            continue
        if isinstance(node, cst.SimpleStatementLine) and all(
            isinstance(s, cst.Import | cst.ImportFrom) for s in node.body
        ):
            roots = _imported_roots(tree)
            if roots == {"__future__"}:
                placed.append((node, "future"))
            elif roots & (local | {"."}) or not all(_installed(r) for r in roots):
                # the project's own modules (found from the script's folder when it runs)
                out.local_modules += sorted(roots & (local | {"."}))
                placed.append((node, "flow"))
            else:
                placed.append((node, "module"))
                known |= _bound_names(tree)
            continue
        if isinstance(node, cst.FunctionDef | cst.ClassDef):
            placed.append((node, "module"))
            known |= _bound_names(tree)
            continue
        if tree.body and all(isinstance(s, ast.Global) for s in tree.body):
            continue  # a no-op at module level; _run_script() declares its names global
        if isinstance(node, cst.SimpleStatementLine) and _is_constant(tree, known, types):
            placed.append((node, "module"))
            known |= _bound_names(tree)
            continue
        placed.append((node, "flow"))
    placed = _settle(placed)
    out.future = [n for n, where in placed if where == "future"]
    out.module = [n for n, where in placed if where == "module"]
    out.flow = [n for n, where in placed if where == "flow"]
    flow_names: set[str] = set()
    for node in out.flow:
        flow_names |= _bound_names(_ast(node))
    out.globals_ = sorted(flow_names)
    out.spark_config = session_config(ast.parse(module.code))
    return out


def _definition_reads(tree: ast.Module) -> set[str]:
    """Names a `def`/`class` statement reads when it runs (decorators, defaults, bases,
    the class body outside its methods), not what its functions read when called."""
    reads: set[str] = set()
    for stmt in tree.body:
        roots: list[ast.AST] = []
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            roots += [*stmt.decorator_list, *stmt.args.defaults]
            roots += [d for d in stmt.args.kw_defaults if d is not None]
        elif isinstance(stmt, ast.ClassDef):
            roots += [*stmt.decorator_list, *stmt.bases, *(k.value for k in stmt.keywords)]
            for inner in stmt.body:
                if isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef):
                    roots += [*inner.decorator_list, *inner.args.defaults]
                elif not isinstance(inner, ast.ClassDef):
                    roots.append(inner)
        else:
            roots.append(stmt)
        for root in roots:
            reads |= {
                n.id
                for n in ast.walk(root)
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
            }
    return reads


def _settle(placed: list[tuple[cst.BaseStatement, str]]) -> list[tuple[cst.BaseStatement, str]]:
    """Move module-level definitions that read flow-only names into the flow (fixpoint)."""
    changed = True
    while changed:
        changed = False
        flow_names: set[str] = set()
        for node, where in placed:
            if where == "flow":
                flow_names |= _bound_names(_ast(node))
        module_names: set[str] = set()
        for node, where in placed:
            if where == "module":
                module_names |= _bound_names(_ast(node))
        for i, (node, where) in enumerate(placed):
            if where != "module" or _is_import(node):
                continue
            late = _definition_reads(_ast(node)) & (flow_names - module_names)
            if late:
                placed[i] = (node, "flow")
                changed = True
                break
    return placed


def _uses_display(analysis: Analysis) -> bool:
    """A notebook calling `display(...)` without defining it (the kernel provides it)."""
    tree = ast.parse(analysis.module.code)
    called = any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "display"
        for n in ast.walk(tree)
    )
    return called and "display" not in _bound_names(tree)


def _is_import(node: cst.BaseStatement) -> bool:
    return isinstance(node, cst.SimpleStatementLine) and all(
        isinstance(s, cst.Import | cst.ImportFrom) for s in node.body
    )


def _is_docstring(node: cst.BaseStatement) -> bool:
    return (
        isinstance(node, cst.SimpleStatementLine)
        and len(node.body) == 1
        and isinstance(node.body[0], cst.Expr)
        and isinstance(node.body[0].value, cst.SimpleString | cst.ConcatenatedString)
    )


def session_config(tree: ast.Module) -> dict[str, str]:
    """Literal settings of every session the script builds: builder `.config(k, v)`,
    `SparkConf().set(k, v)`, and `enableHiveSupport()` as the Hive catalog."""
    config: dict[str, str] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        chain = _chain(node)
        last = chain[-1] if chain else ""
        if last == "enableHiveSupport":
            config["spark.sql.catalogImplementation"] = "hive"
        if (
            last in {"config", "set"}
            and len(node.args) == 2
            and (
                "builder" in chain
                or "SparkConf" in chain
                or (last == "set" and "conf" not in chain)
            )
        ):
            key, value = node.args
            if (
                isinstance(key, ast.Constant)
                and isinstance(value, ast.Constant)
                and isinstance(key.value, str)
                and key.value.startswith("spark.")
            ):
                v = value.value
                config[key.value] = str(v).lower() if isinstance(v, bool) else str(v)
    config.pop("spark.master", None)
    config.pop("spark.app.name", None)
    return config


class _AsMain(cst.CSTTransformer):
    """`__name__` in the flow is `"__main__"`, as when the script runs (a guard written
    another way, `logging.getLogger(__name__)`); `f.__name__` and keywords stay."""

    def __init__(self) -> None:
        super().__init__()
        self.keep: set[int] = set()

    def visit_Attribute(self, node: cst.Attribute) -> None:
        self.keep.add(id(node.attr))

    def visit_Arg(self, node: cst.Arg) -> None:
        if node.keyword is not None:
            self.keep.add(id(node.keyword))

    def leave_Name(self, original_node: cst.Name, updated_node: cst.Name) -> cst.BaseExpression:
        if updated_node.value == "__name__" and id(original_node) not in self.keep:
            return cst.SimpleString('"__main__"')
        return updated_node


class _RunTransform(cst.CSTTransformer):
    """`__file__` -> SCRIPT_FILE, `spark.stop()` dropped, `SparkContext(...)` ->
    `SparkContext.getOrCreate(...)`."""

    def __init__(self, script_file: bool) -> None:
        self.script_file = script_file

    def leave_Name(self, original_node: cst.Name, updated_node: cst.Name) -> cst.Name:
        if self.script_file and updated_node.value == "__file__":
            return updated_node.with_changes(value="_SCRIPT_FILE")
        return updated_node

    def leave_SimpleStatementLine(
        self, original_node: cst.SimpleStatementLine, updated_node: cst.SimpleStatementLine
    ) -> cst.SimpleStatementLine | cst.RemovalSentinel:
        kept = [s for s in updated_node.body if not _is_stop(s)]
        if len(kept) == len(updated_node.body):
            return updated_node
        if not kept:
            return cst.RemoveFromParent()
        return updated_node.with_changes(body=kept)

    def leave_IndentedBlock(
        self, original_node: cst.IndentedBlock, updated_node: cst.IndentedBlock
    ) -> cst.IndentedBlock:
        if updated_node.body:
            return updated_node
        return updated_node.with_changes(body=[cst.SimpleStatementLine(body=[cst.Pass()])])

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        func = updated_node.func
        name = func.value if isinstance(func, cst.Name) else None
        if isinstance(func, cst.Attribute):
            name = func.attr.value
        if name != "SparkContext":
            return updated_node
        conf = [a for a in updated_node.args if a.keyword and a.keyword.value == "conf"]
        return updated_node.with_changes(
            func=cst.Attribute(value=func, attr=cst.Name("getOrCreate")), args=conf
        )


def _is_stop(statement: cst.BaseSmallStatement) -> bool:
    if not isinstance(statement, cst.Expr) or not isinstance(statement.value, cst.Call):
        return False
    call = statement.value
    if call.args or not isinstance(call.func, cst.Attribute) or call.func.attr.value != "stop":
        return False
    return bool(SPARK_RECEIVER.search(_code(call.func.value)))


def generate_whole(analysis: Analysis, package_dir: Path | None, argv: list[str]) -> dict[str, str]:
    """File name -> text of the one-Factory package for `analysis` (see the module
    docstring); `argv`: the command line the migration was given, the Config default."""
    from .codegen import _docstring_text, _Fill, script_file_line

    plan = layout(analysis)
    source = analysis.path.name
    name = factory_name(analysis)
    bodies: dict[str, list[cst.BaseStatement]] = {}

    def slot(nodes: list[cst.BaseStatement]) -> str:
        key = f"__pysetl_body_{len(bodies)}__"
        bodies[key] = nodes
        return f"{key}()"

    docstring = analysis.module.body[0] if analysis.module.body else None
    lines = [f'"""PySetl pipeline migrated from `{source}` by `pysetl-dagster migrate`.', ""]
    if docstring is not None and _is_docstring(docstring):
        lines += [f"{source}: {_docstring_text(docstring)}", ""]
    lines += [
        f"The script runs as one Factory, {name}: its module code and `__main__` block, in",
        "order, in `run_script()`; its functions, classes and constants stay module level.",
        "The Factory's Config `argv` is its whole command line; the session is the Dagster",
        "Spark resource's (see reports/ for every construct and what became of it).",
        '"""',
        "",
    ]
    if plan.future:
        lines.append(slot(plan.future))
    lines += ["from typing import Any as _Any", "", "import dagster as _dg"]
    imports = [n for n in plan.module if _is_import(n)]
    rest = [n for n in plan.module if not _is_import(n)]
    if imports:
        lines.append(slot(imports))
    lines += [
        "from pysetl.workflow import Factory as _Factory",
        "from pysetl.workflow import Pipeline as _Pipeline",
        "from pysetl.workflow import Stage as _Stage",
        "from pyspark.sql import DataFrame as _DataFrame",
        "",
        "from pysetl_dagster.migrate.runtime import active_spark as _active_spark",
        "from pysetl_dagster.migrate.runtime import script_file as _script_file",
        "from pysetl_dagster.migrate.runtime import script_run as _script_run",
        "from pysetl_dagster.migrate.runtime import ship_by_value as _ship_by_value",
        *(
            ["from pysetl_dagster.migrate.runtime import display  # what Jupyter provides"]
            if _uses_display(analysis)
            else []
        ),
        "",
        "# Generated names start with `_`: the script's own names (say `Pipeline` from",
        "# pyspark.ml) never clash with them.",
        "_ship_by_value(__name__)  # UDFs reach Spark's workers by value, as from `__main__`",
        f"_SPARK_CONFIG: dict[str, str] = {dict(sorted(plan.spark_config.items()))!r}",
        "# The original script: its folder holds the modules it imports.",
        "_" + script_file_line(analysis.path, package_dir).replace("script_file(", "_script_file("),
        "",
    ]
    if rest:
        lines.append(slot(rest))
    lines += [
        "",
        "",
        "def _run_script() -> None:",
        f'    """{source}: its module code and `__main__` block, in order."""',
    ]
    if plan.globals_:
        lines.append(f"    global {', '.join(plan.globals_)}")
    flow = [node.visit(_AsMain()) for node in plan.flow]
    lines.append("    " + (slot(flow) if flow else "pass"))  # type: ignore[arg-type]
    lines += [
        "",
        "",
        f"class {name}(_Factory[_DataFrame]):",
        f'    """Runs {source} as `python {source} ARGV` would, on the run\'s SparkSession."""',
        "",
        "    class Config(_dg.Config):",
        f'        """The command line of {source}."""',
        "",
        f"        argv: list[str] = {list(argv)!r}  # noqa: RUF012 (pydantic copies it)",
        f'        """`sys.argv[1:]` of {source} (the command line given to the migration)."""',
        "",
        "    config: _Any = Config()",
        "",
        "    def __init__(self) -> None:",
        "        super().__init__()",
        "        self.output: _DataFrame | None = None",
        "",
        f'    def read(self) -> "{name}":',
        "        return self",
        "",
        f'    def process(self) -> "{name}":',
        "        with _script_run(_SCRIPT_FILE, list(self.config.argv)):",
        "            _run_script()",
        '        self.output = _active_spark().createDataFrame([], "written boolean")',
        "        return self",
        "",
        f'    def write(self) -> "{name}":',
        "        return self",
        "",
        "    def get(self) -> _DataFrame | None:",
        "        return self.output",
        "",
        "",
        "def _build_pipeline() -> _Pipeline:",
        f'    """{source} as one Stage of one Factory."""',
        f"    return _Pipeline().add_stage(_Stage().add_factory({name}()))",
    ]
    skeleton = "\n".join(lines) + "\n"
    filled = cst.parse_module(skeleton).visit(_Fill(bodies))
    code = filled.visit(_RunTransform(script_file=True)).code
    definitions = (
        f'"""Dagster definitions for the pipeline migrated from `{source}`.\n\n'
        f"    dagster dev -m {analysis.name}.definitions\n"
        '"""\n\n'
        "from pysetl_dagster import build_definitions, pysetl_pipeline\n\n"
        "from .pipeline import _SPARK_CONFIG, _build_pipeline\n\n"
        f'pipeline = pysetl_pipeline(_build_pipeline(), name="{analysis.name}")\n'
        "defs = build_definitions(pipeline, spark_config=_SPARK_CONFIG)\n"
    )
    return {
        "__init__.py": f'"""Pipeline migrated from `{source}`."""\n',
        "pipeline.py": code,
        "definitions.py": definitions,
    }


def relative_script(script: Path, package_dir: Path) -> str:
    """The script's path from the package folder (kept for reports)."""
    return os.path.relpath(script.resolve(), package_dir.resolve())
