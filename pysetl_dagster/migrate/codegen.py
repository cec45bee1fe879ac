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

import shutil
import subprocess
import sys
from pathlib import Path

import libcst as cst

from .analysis import Analysis, Unit

ARGV_MARKERS = ("sys.argv", "parse_args(", "getopt")


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


def _ordered(units: list[Unit]) -> list[Unit]:
    return sorted(units, key=lambda u: (u.stage, u.uid))


def generate(analysis: Analysis) -> dict[str, str]:
    """File name -> text of the generated package."""
    bodies: dict[str, list[cst.BaseStatement]] = {}

    def slot(nodes: list[cst.BaseStatement]) -> str:
        key = f"__pysetl_body_{len(bodies)}__"
        bodies[key] = nodes
        return f"{key}()"

    source = analysis.path.name
    env = args_env_var(analysis)
    units = [u for u in _ordered(analysis.units) if u.enabled]
    by_uid = {u.uid: u for u in analysis.units}
    lines: list[str] = [
        f'"""PySetl pipeline migrated from `{source}` by `pysetl-dagster migrate`.',
        "",
        "The business logic is the script's own code, statement for statement (see",
        "reports/ for which lines went where). The command line the script took comes",
        f"from `${env}` (unset: the script's own defaults).",
        '"""',
        "",
    ]
    if analysis.imports:
        lines.append(slot(list(analysis.imports)))
    lines += [
        "from pysetl.workflow import Delivery, Factory, Pipeline, Stage",
        "from pyspark.sql import DataFrame as _DataFrame",
        "",
        "from pysetl_dagster.migrate.runtime import ActiveSpark, active_spark, script_argv",
        "",
        f'ARGS_ENV = "{env}"',
        f"SPARK_CONFIG: dict[str, str] = {dict(sorted(analysis.spark_config.items()))!r}",
    ]
    for name in sorted(analysis.module_spark_names):
        lines.append(f"{name} = ActiveSpark()")
    lines.append("")
    # Helpers and module-level config code, in source order; argv handling runs on $ARGS_ENV.
    run: list[cst.BaseStatement] = []

    def flush() -> None:
        if not run:
            return
        code = "".join(analysis.module.code_for_node(n) for n in run)
        if any(m in code for m in ARGV_MARKERS):
            lines.append(f"with script_argv(ARGS_ENV, {source!r}):")
            lines.append("    " + slot(list(run)))
        else:
            lines.append(slot(list(run)))
        run.clear()

    for kind, node in analysis.helpers:
        if kind == "def":
            flush()
            lines.append(slot([node]))
        else:
            run.append(node)
    flush()
    if analysis.main_prelude:
        run.extend(s.node for s in analysis.main_prelude)
        flush()
    lines.append("")

    for unit in units:
        lines += _factory(unit, by_uid, analysis, slot)
    lines += [
        "",
        "def build_pipeline() -> Pipeline:",
        f'    """The Factories of `{source}`, one Stage per dependency level."""',
        "    pipeline = Pipeline()",
    ]
    stages = sorted({u.stage for u in units})
    for stage in stages:
        lines.append("    stage = Stage()")
        for unit in units:
            if unit.stage == stage:
                lines.append(f"    stage.add_factory({unit.name}())")
        lines.append("    pipeline.add_stage(stage)")
    lines.append("    return pipeline")
    skeleton = "\n".join(lines) + "\n"
    module = cst.parse_module(skeleton)
    pipeline_code = module.visit(_Fill(bodies)).code
    definitions = (
        f'"""Dagster definitions for the pipeline migrated from `{source}`.\n\n'
        f"    dagster dev -m {analysis.name}.definitions\n"
        '"""\n\n'
        "from pysetl_dagster import build_definitions, pysetl_pipeline\n\n"
        "from .pipeline import SPARK_CONFIG, build_pipeline\n\n"
        f'pipeline = pysetl_pipeline(build_pipeline(), name="{analysis.name}")\n'
        "defs = build_definitions(pipeline, spark_config=SPARK_CONFIG)\n"
    )
    return {
        "__init__.py": f'"""Pipeline migrated from `{source}`."""\n',
        "pipeline.py": pipeline_code,
        "definitions.py": definitions,
    }


def _factory(unit: Unit, by_uid: dict[int, Unit], analysis: Analysis, slot: object) -> list[str]:
    assert callable(slot)
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
    code = "".join(s.code for s in unit.statements)
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
    for sp in local_spark:
        lines.append(f"        {sp} = active_spark()")
    for var, _ in inputs:
        if ":" not in var:
            lines.append(f"        {var} = self.{var}_in.get()")
    nodes = [s.node for s in unit.statements]
    first = nodes[0]
    if isinstance(first, cst.SimpleStatementLine | cst.BaseCompoundStatement):
        kept = [line for line in first.leading_lines if line.comment is not None]
        nodes[0] = first.with_changes(leading_lines=kept)
    lines.append("        " + slot(nodes))
    output = unit.output
    if output is None:
        written = [v for v, _ in inputs if ":" not in v]
        locals_ = [n for s in unit.statements for n in sorted(s.df_defs)]
        output = locals_[-1] if locals_ else (written[0] if written else None)
    if output is None:
        spark_expr = local_spark[0] if local_spark else "active_spark()"
        output = f'{spark_expr}.createDataFrame([], "written boolean")'
    lines += [
        f"        self.output = {output}",
        "        return self",
        "",
        f'    def write(self) -> "{name}":',
        "        return self",
        "",
        "    def get(self) -> _DataFrame | None:",
        "        return self.output",
        "",
    ]
    del code
    return lines


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
    subprocess.run(
        [ruff, "check", *common, "--fix", "--select", "F401,I", "-q", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    subprocess.run(
        [ruff, "format", *common, "-q", str(directory)], capture_output=True, check=False
    )
    result = subprocess.run(
        [ruff, "check", *common, "-q", str(directory)], capture_output=True, text=True, check=False
    )
    return [line for line in result.stdout.splitlines() if line.strip()]
