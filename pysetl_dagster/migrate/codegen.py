"""Generation: an analysed script becomes a package with PySetl Factories and Dagster definitions.

    OUT/<name>/__init__.py
    OUT/<name>/pipeline.py      the script's imports, helpers and config code (verbatim), one
                                Factory per unit, `build_pipeline()`
    OUT/<name>/definitions.py   `defs = build_definitions(pysetl_pipeline(build_pipeline()))`

The script's statements are moved as libcst nodes (comments, formatting and multi-line strings
kept exactly); the generated skeleton around them is plain text parsed by libcst, and the
result is formatted and lint-fixed with ruff when it is installed.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import libcst as cst

from .analysis import Analysis, Statement, Unit, parse_statement
from .params import ARGV_MARKERS, ConfigPlan, Param, UnitParams, plan_config


def args_env_var(analysis: Analysis) -> str:
    """The environment variable holding the command line the migrated pipeline parses."""
    return f"PYSETL_MIGRATE_ARGS_{analysis.name.upper()}"


class _Fill(cst.CSTTransformer):
    """Replace each `__pysetl_body_N__()` placeholder line with the statements it stands for."""

    def __init__(self, bodies: dict[str, list[cst.BaseStatement]]) -> None:
        self.bodies = bodies

    def leave_SimpleStatementLine(
        self, original_node: cst.SimpleStatementLine, updated_node: cst.SimpleStatementLine
    ) -> cst.BaseStatement | cst.FlattenSentinel[cst.BaseStatement]:
        body = updated_node.body
        if (
            len(body) == 1
            and isinstance(body[0], cst.Expr)
            and isinstance(body[0].value, cst.Call)
            and isinstance(body[0].value.func, cst.Name)
            and body[0].value.func.value in self.bodies
        ):
            return cst.FlattenSentinel(self.bodies[body[0].value.func.value])
        return updated_node


class _LiteralsToConfig(cst.CSTTransformer):
    """Literal strings (by node identity) become Config reads: `expressions` maps id(literal)
    to the expression that replaces it; `{literal}` in it stands for the literal's own code."""

    def __init__(self, expressions: dict[int, str]) -> None:
        self.expressions = expressions

    def leave_SimpleString(
        self, original_node: cst.SimpleString, updated_node: cst.SimpleString
    ) -> cst.BaseExpression:
        return self._swap(original_node, updated_node)

    def leave_ConcatenatedString(
        self, original_node: cst.ConcatenatedString, updated_node: cst.ConcatenatedString
    ) -> cst.BaseExpression:
        return self._swap(original_node, updated_node)

    def _swap(self, original: cst.BaseString, updated: cst.BaseString) -> cst.BaseExpression:
        expression = self.expressions.get(id(original))
        if expression is None:
            return updated
        literal = cst.Module(body=[]).code_for_node(original)
        return cst.parse_expression(expression.replace("{literal}", literal))

    def apply(self, nodes: list[cst.BaseStatement]) -> list[cst.BaseStatement]:
        if not self.expressions:
            return nodes
        return [n.visit(self) for n in nodes]  # type: ignore[misc]


class _ScriptFile(cst.CSTTransformer):
    """`__file__` in the script's code is the original script's path, not the package's."""

    def leave_Name(self, original_node: cst.Name, updated_node: cst.Name) -> cst.Name:
        return (
            updated_node.with_changes(value="SCRIPT_FILE")
            if (updated_node.value == "__file__")
            else updated_node
        )


def _script_docstring(analysis: Analysis) -> cst.BaseStatement | None:
    """The script's module docstring: it goes into the generated module's docstring."""
    body = analysis.module.body
    first = body[0] if body else None
    if (
        isinstance(first, cst.SimpleStatementLine)
        and len(first.body) == 1
        and isinstance(first.body[0], cst.Expr)
        and isinstance(first.body[0].value, cst.SimpleString | cst.ConcatenatedString)
    ):
        return first
    return None


def _docstring_text(node: cst.BaseStatement) -> str:
    assert isinstance(node, cst.SimpleStatementLine) and isinstance(node.body[0], cst.Expr)
    value = node.body[0].value
    assert isinstance(value, cst.SimpleString | cst.ConcatenatedString)
    raw = value.evaluated_value
    text = raw.decode() if isinstance(raw, bytes) else (raw or "")
    return text.strip().replace("\\", "\\\\").replace(3 * '"', 3 * "'")


def uses_script_file(analysis: Analysis) -> bool:
    """Whether the script reads `__file__` (its own location)."""
    tree = ast.parse(analysis.module.code)
    return any(isinstance(n, ast.Name) and n.id == "__file__" for n in ast.walk(tree))


def _ordered(units: list[Unit]) -> list[Unit]:
    return sorted(units, key=lambda u: (u.stage, u.uid))


def script_file_line(script: Path, package_dir: Path | None) -> str:
    """`SCRIPT_FILE = ...`: found from the generated package by a relative path when the
    package's folder is known, so moving both together (a clone elsewhere) keeps it valid."""
    if package_dir is None:
        return f"SCRIPT_FILE = {str(script.resolve())!r}"
    relative = os.path.relpath(script.resolve(), package_dir.resolve())
    return f"SCRIPT_FILE = script_file(__name__, {relative!r})"


class _Slots:
    """Placeholders in the text skeleton for the script's own statements (libcst nodes)."""

    def __init__(self) -> None:
        self.bodies: dict[str, list[cst.BaseStatement]] = {}

    def __call__(self, nodes: list[cst.BaseStatement]) -> str:
        key = f"__pysetl_body_{len(self.bodies)}__"
        self.bodies[key] = nodes
        return f"{key}()"


def generate(
    analysis: Analysis, package_dir: Path | None = None, argv: list[str] | None = None
) -> dict[str, str]:
    """File name -> text of the generated package (`package_dir`: where it will live).

    Passes: the module header (docstring, imports, settings), the script's helpers and
    module code, the command line, one class per Factory, `build_pipeline()`; then the
    script's statements fill their slots and `__file__` becomes `SCRIPT_FILE`."""
    slot = _Slots()
    plan = plan_config(analysis)
    units = [u for u in _ordered(analysis.units) if u.enabled]
    by_uid = {u.uid: u for u in analysis.units}
    lines = _header(analysis, plan, slot, package_dir, argv)
    lines += _module_code(analysis, plan, slot)
    if plan.uses_command_line:
        lines += _command_line(plan, analysis, slot)
    for unit in units:
        lines += _factory(unit, by_uid, analysis, slot, plan.units[unit.uid])
    if plan.uses_command_line:
        lines += _factory_config(units, plan)
    lines += _build_pipeline(analysis, units)
    filled = cst.parse_module("\n".join(lines) + "\n").visit(_Fill(slot.bodies))
    pipeline_code = (filled.visit(_ScriptFile()) if uses_script_file(analysis) else filled).code
    return {
        "__init__.py": f'"""Pipeline migrated from `{analysis.path.name}`."""\n',
        "pipeline.py": pipeline_code,
        "definitions.py": _definitions(analysis, plan),
    }


def _header(
    analysis: Analysis,
    plan: ConfigPlan,
    slot: _Slots,
    package_dir: Path | None,
    argv: list[str] | None,
) -> list[str]:
    """Docstring (the script's own included), imports, `ARGS_ENV`, `SPARK_CONFIG`,
    `SCRIPT_FILE` and the stand-ins for module-level sessions."""
    source = analysis.path.name
    env = args_env_var(analysis)
    if plan.uses_command_line:
        how = [
            "What the script hard-codes or takes as arguments is each Factory's Config, with",
            "the script's values as defaults; its own argument and config code runs on the",
            f"command line a Config stands for (`${env}` sets other defaults).",
        ]
    elif plan.fallback:
        how = [
            f"The script's command line comes from `${env}` (unset: its own defaults):",
            f"{plan.fallback}.",
        ]
    else:
        how = ["What the script hard-codes (paths, tables, constants) is each Factory's Config."]
    docstring = _script_docstring(analysis)
    lines: list[str] = [
        f'"""PySetl pipeline migrated from `{source}` by `pysetl-dagster migrate`.',
        "",
    ]
    if docstring is not None:
        lines += [f"{source}: {_docstring_text(docstring)}", ""]
    lines += [
        "The business logic is the script's own code, statement for statement (see",
        "reports/ for which lines went where).",
        *how,
        '"""',
        "",
        "from typing import Any",
        "",
        "import dagster as dg",
    ]
    if analysis.imports:
        lines.append(slot(list(analysis.imports)))
    lines += [
        "from pysetl.workflow import Delivery, Factory, Pipeline, Stage",
        "from pyspark.sql import DataFrame as _DataFrame",
        "",
        "from pysetl_dagster.migrate.runtime import (",
        "    ActiveSpark,",
        "    Arg,",
        "    CommandLine,",
        "    active_spark,",
        "    run_settings,",
        "    setting,",
        "    script_args,",
        "    script_argv,",
        "    script_file,",
        "    ship_by_value,",
        ")",
        "",
        "ship_by_value(__name__)  # UDFs reach Spark's workers by value, as from `__main__`",
        f'ARGS_ENV = "{env}"',
        "# The command line given to the migration (--args): the defaults when $ARGS_ENV is unset.",
        f"SCRIPT_ARGV: list[str] = {list(argv or [])!r}",
        f"SPARK_CONFIG: dict[str, str] = {dict(sorted(analysis.spark_config.items()))!r}",
    ]
    if uses_script_file(analysis):
        lines += [
            "# The script located files from its own path (`__file__`): they still resolve",
            "# against the original script.",
            script_file_line(analysis.path, package_dir),
        ]
    for name in sorted(analysis.module_spark_names):
        lines.append(f"{name} = ActiveSpark()")
    lines.append("")
    return lines


def _module_code(analysis: Analysis, plan: ConfigPlan, slot: _Slots) -> list[str]:
    """Helpers and module-level config code, in source order; argv handling runs on
    `$ARGS_ENV`, the settings the command line becomes are left to `script_values`."""
    source = analysis.path.name
    settings_nodes = {id(st.node) for st in plan.settings} if plan.uses_command_line else set()
    docstring = _script_docstring(analysis)
    skipped = settings_nodes | ({id(docstring)} if docstring is not None else set())
    lines: list[str] = []
    run: list[cst.BaseStatement] = []

    def flush() -> None:
        if not run:
            return
        code = "".join(analysis.module.code_for_node(n) for n in run)
        if any(m in code for m in ARGV_MARKERS):
            lines.append(f"with script_argv(ARGS_ENV, {source!r}, SCRIPT_ARGV):")
            lines.append("    " + slot(list(run)))
        else:
            lines.append(slot(list(run)))
        run.clear()

    for kind, node in analysis.helpers:
        if kind == "def":
            flush()
            lines.append(slot([node]))
        elif id(node) not in skipped:
            run.append(node)
    flush()
    if analysis.main_prelude:
        run.extend(s.node for s in analysis.main_prelude if id(s.node) not in settings_nodes)
        flush()
    lines.append("")
    return lines


def _build_pipeline(analysis: Analysis, units: list[Unit]) -> list[str]:
    """`build_pipeline()`: one Stage per dependency level."""
    lines = [
        "",
        "def build_pipeline() -> Pipeline:",
        f'    """The Factories of `{analysis.path.name}`, one Stage per dependency level."""',
        "    pipeline = Pipeline()",
    ]
    for stage in sorted({u.stage for u in units}):
        lines.append("    stage = Stage()")
        lines += [f"    stage.add_factory({u.name}())" for u in units if u.stage == stage]
        lines.append("    pipeline.add_stage(stage)")
    lines.append("    return pipeline")
    return lines


def _definitions(analysis: Analysis, plan: ConfigPlan) -> str:
    """`definitions.py`: the Dagster definitions of the pipeline."""
    source = analysis.path.name
    env = args_env_var(analysis)
    return (
        f'"""Dagster definitions for the pipeline migrated from `{source}`.\n\n'
        f"    dagster dev -m {analysis.name}.definitions\n"
        '"""\n\n'
        "from pysetl_dagster import build_definitions, pysetl_pipeline\n\n"
        + (
            "from pysetl_dagster.migrate.runtime import script_args\n\n"
            "from .pipeline import (\n"
            "    ARGS_ENV,\n"
            "    SCRIPT_ARGV,\n"
            "    SPARK_CONFIG,\n"
            "    build_pipeline,\n"
            "    factory_config,\n"
            ")\n\n"
            "# Each Factory's Config defaults to the script's own values; a command line in\n"
            f"# ${env} changes those defaults (the Launchpad still edits them per run).\n"
            "pipeline = pysetl_pipeline(\n"
            f'    build_pipeline(), name="{analysis.name}", '
            "factory_config=factory_config(script_args(ARGS_ENV, SCRIPT_ARGV))\n"
            ")\n"
            if plan.uses_command_line
            else "from .pipeline import SPARK_CONFIG, build_pipeline\n\n"
            f'pipeline = pysetl_pipeline(build_pipeline(), name="{analysis.name}")\n'
        )
        + "defs = build_definitions(pipeline, spark_config=SPARK_CONFIG)\n"
    )


def _command_line(plan: ConfigPlan, analysis: Analysis, slot: _Slots) -> list[str]:
    """`COMMAND_LINE` (the script's arguments as fields) and `script_values(argv)`: the
    script's own argument and config code, verbatim, run on a command line."""
    source = analysis.path.name
    where = ", ".join(analysis.span(s) for s in plan.settings)
    lines = ["COMMAND_LINE = CommandLine(", f"    {source!r},", "    ("]
    lines += [f"        {p.spec()}," for p in plan.command_line.params if p.on_command_line]
    lines += [
        "    ),",
        ")",
        "",
        "",
        "def script_values(argv: list[str], pysetl_config: Any = None) -> dict[str, Any]:",
        f'    """{source} {where}: its argument and config handling, run on `argv`',
        '    (and on the files `pysetl_config`, the Factory Config, names)."""',
        "",
        "    def script_settings() -> dict[str, Any]:",
        "        " + slot(_without_blank_lead(_files_to_config(plan))),
        "        return dict(locals())",
        "",
        f"    return run_settings({source!r}, argv, script_settings)",
        "",
    ]
    return lines


def _factory_config(units: list[Unit], plan: ConfigPlan) -> list[str]:
    """`factory_config(argv)`: each Factory's command-line fields for a command line."""
    lines = [
        "",
        "def factory_config(argv: list[str]) -> dict[Any, dict[str, Any]]:",
        '    """Each Factory\'s command-line fields for `argv` (none: the Config defaults)."""',
        "    if not argv:",
        "        return {}",
    ]
    entries: list[str] = []
    for unit in units:
        names = [p.field for p in plan.units[unit.uid].params if p.on_command_line]
        if names:
            keys = ", ".join(repr(n) for n in names) + ("," if len(names) == 1 else "")
            entries.append(f"        {unit.name}: {{k: fields[k] for k in ({keys})}},")
    if not entries:  # the script takes no arguments: a command line is an error
        return [*lines, "    COMMAND_LINE.fields(argv)", "    return {}", ""]
    return [*lines, "    fields = COMMAND_LINE.fields(argv)", "    return {", *entries, "    }", ""]


def _factory(
    unit: Unit, by_uid: dict[int, Unit], analysis: Analysis, slot: _Slots, params: UnitParams
) -> list[str]:
    name = unit.name
    where = ", ".join(analysis.span(s) for s in unit.statements)
    kind = "Writes" if unit.is_sink else "Delivers"
    written = [v for v in sorted(unit.inputs) if ":" not in v]
    what = unit.output or (written[0] if written else "its result")
    lines = [
        "",
        f"class {name}(Factory[_DataFrame]):",
        f'    """{kind} `{what}`: {analysis.path.name} {where}."""',
        "",
    ]
    inputs = sorted(unit.inputs.items())
    for var, producer in inputs:
        if ":" in var:
            continue
        lines.append(f"    {var}_in = Delivery[_DataFrame](producer={by_uid[producer].name})")
    if params.params:
        lines += [
            "",
            "    class Config(dg.Config):",
            f'        """What {analysis.path.name} hard-codes or takes as arguments."""',
            "",
        ]
        for p in params.params:
            lines.append(f"        {p.declaration()}")
            lines.append(f'        """{_describe(p, analysis)}"""')
        if not any(p.required for p in params.params):
            lines += ["", "    config: Any = Config()"]
    uses = set().union(*(s.uses for s in unit.statements))
    local_spark = sorted((analysis.spark_names - analysis.module_spark_names) & uses)
    lines += [
        "",
        "    def __init__(self) -> None:",
        "        super().__init__()",
        "        self.output: _DataFrame | None = None",
        "",
        f'    def read(self) -> "{name}":',
        "        return self",
        "",
        f'    def process(self) -> "{name}":',
    ]
    output = unit.output
    if output is None:
        written = [v for v, _ in inputs if ":" not in v]
        locals_ = [n for s in unit.statements for n in sorted(s.df_defs)]
        output = locals_[-1] if locals_ else (written[0] if written else None)
    body, sinks = _split_sinks(unit, analysis, output)
    lines += _bindings(body, params, local_spark)
    for var, _ in inputs:
        if ":" not in var:
            lines.append(f"        {var} = self.{var}_in.get()")
    if body:
        lines.append("        " + slot(_without_blank_lead(_with_config(body, params))))
    if output is None:
        spark_expr = local_spark[0] if local_spark else "active_spark()"
        output = f'{spark_expr}.createDataFrame([], "written boolean")'
    lines += [
        f"        self.output = {output}",
        "        return self",
        "",
        f'    def write(self) -> "{name}":',
    ]
    if sinks:
        lines += _bindings(sinks, params, local_spark)
        lines.append(f"        {output} = self.output")
        lines.append("        " + slot(_without_blank_lead(_with_config(sinks, params))))
    lines += [
        "        return self",
        "",
        "    def get(self) -> _DataFrame | None:",
        "        return self.output",
        "",
    ]
    return lines


def _split_sinks(
    unit: Unit, analysis: Analysis, output: str | None
) -> tuple[list[Statement], list[Statement]]:
    """(process statements, write statements): the writes that end a Factory and write only
    its output move to `write()`, which the step runs on the stored version read back."""
    frames = {n for s in analysis.statements for n in s.df_defs} | set(unit.inputs)
    stmts = list(unit.statements)
    cut = len(stmts)
    while cut > 0 and output is not None:
        st = stmts[cut - 1]
        tree = parse_statement(st.code)
        writes_output_only = (
            st.is_sink
            and len(tree.body) == 1
            and isinstance(tree.body[0], ast.Expr)
            and (st.uses & frames) == {output}
            and not any(":" in d for d in st.defs)
        )
        if not writes_output_only:
            break
        cut -= 1
    return stmts[:cut], stmts[cut:]


def _bindings(stmts: list[Statement], params: UnitParams, local_spark: list[str]) -> list[str]:
    """The names `stmts` need bound at the top of a method: the session, the settings the
    script derived from its command line, and constants that became Config."""
    uses = set().union(*(s.uses for s in stmts)) if stmts else set()
    lines = [f"        {sp} = active_spark()" for sp in local_spark if sp in uses]
    settings = [n for n in params.settings_names if n in uses]
    if settings:
        lines.append("        values = script_values(COMMAND_LINE.argv(self.config), self.config)")
        lines += [f'        {n} = values["{n}"]' for n in settings]
    for p in params.params:
        if p.kind == "constant" and p.name in uses:
            lines.append(f"        {p.name} = self.config.{p.field}")
    return lines


def _files_to_config(plan: ConfigPlan) -> list[cst.BaseStatement]:
    """The settings statements; a file they open by a literal path reads the Config field
    (the script's path when the Factory's Config has no such field)."""
    expressions = {k: f"setting(pysetl_config, {f!r}, {{literal}})" for k, f in plan.files.items()}
    return _LiteralsToConfig(expressions).apply([s.node for s in plan.settings])


def _with_config(stmts: list[Statement], params: UnitParams) -> list[cst.BaseStatement]:
    """A Factory's statements; hard-coded paths and tables read its Config."""
    expressions = {k: f"self.config.{p.field}" for k, (_, p) in params.paths.items()}
    return _LiteralsToConfig(expressions).apply([s.node for s in stmts])


def _without_blank_lead(nodes: list[cst.BaseStatement]) -> list[cst.BaseStatement]:
    """The first statement keeps its comments but not the blank lines above it."""
    first = nodes[0]
    if isinstance(first, cst.SimpleStatementLine | cst.BaseCompoundStatement):
        kept = [line for line in first.leading_lines if line.comment is not None]
        return [first.with_changes(leading_lines=kept), *nodes[1:]]
    return nodes


def _describe(p: Param, analysis: Analysis) -> str:
    default = " (required)" if p.required else ""
    if p.default is None and not p.required:
        default = f" (None: the script computes it: `{p.default_src}`)"
    return f"The script's {p.source_text()}, {analysis.where(p.line)}{default}."


def ruff_executable() -> str | None:
    """Ruff next to this Python (the project's dev install), else on PATH."""
    beside = Path(sys.executable).parent / "ruff"
    return str(beside) if beside.exists() else shutil.which("ruff")


def format_package(directory: Path) -> list[str]:
    """`ruff check --fix` (unused imports the dropped session left, import order) and
    `ruff format`; returns what ruff still reports (empty when clean)."""
    ruff = ruff_executable()
    if ruff is None:
        return ["ruff is not installed: the output is not formatted (pip install ruff)"]
    common = ["--no-cache", "--isolated"]

    # From the output folder, as its user would run ruff: import sorting then does not depend
    # on where the migration was started (the project's own packages count as first-party).
    def ruff_run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [ruff, *args, *common, "-q", str(directory)],
            cwd=directory.parent,
            capture_output=True,
            text=True,
            check=False,
        )

    # safe fixes only; G010's is not, for the script's own code: it turns a Log4j wrapper's
    # `log.warn()` into `log.warning()`, a method such a wrapper does not have
    ruff_run("check", "--fix", "--extend-select", "F401,I", "--unfixable", "G010")
    ruff_run("format")
    return [line for line in ruff_run("check").stdout.splitlines() if line.strip()]
