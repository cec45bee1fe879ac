"""The migration of a file or folder: discover, analyse, plan, write (safely), verify, report.

Writing is all-or-nothing per run and never silent: files that exist already are only replaced
with `force`, and whatever a run replaces is first moved to `OUT/.backups/<stamp>/`, which
`restore(OUT)` brings back. `OUT/.pysetl-migrate.json` lists what the last run wrote.
"""

from __future__ import annotations

import difflib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from .analysis import Analysis, MigrationSyntaxError, analyze
from .checks import Unbound, raw_argv_reads, unbound_names
from .codegen import args_env_var, format_package, generate, uses_script_file
from .findings import Finding, scan
from .notebook import databricks_script, is_databricks_source, notebook_script
from .project import Project, has_sink
from .report import render_report, render_summary
from .result import FileResult
from .verify import VerifyItem, VerifyResult, verify_one
from .verify import _environment as _verify_environment
from .whole import factory_name, generate_whole, layout

MANIFEST = ".pysetl-migrate.json"
# Values that follow the partitioning or the files read: the same on one Spark application's
# lineage, different once a Factory's output is stored and read back (the split).
PARTITION_DEPENDENT = {
    "monotonically_increasing_id",
    "rand",
    "randn",
    "uuid",
    "input_file_name",
    "spark_partition_id",
    "randomSplit",
    "sample",
    "zipWithIndex",
    "zipWithUniqueId",
}
BACKUPS = ".backups"


class MigrationError(Exception):
    """The migration cannot go ahead (e.g. it would overwrite files without `--force`)."""


def discover(source: Path) -> list[Path]:
    """The scripts and notebooks to migrate: `source` itself, or those in the folder (sorted)."""
    if not source.exists():
        raise MigrationError(f"{source} does not exist: give a .py file, a .ipynb or a folder")
    if source.is_file():
        if source.suffix not in (".py", ".ipynb"):
            raise MigrationError(f"{source} is neither a .py script nor a .ipynb notebook")
        return [source]
    import os

    found: list[Path] = []
    seen: set[str] = set()  # real folders: a link cycle is walked once
    for folder, dirs, files in os.walk(source, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"]
        found += [
            Path(folder) / f
            for f in files
            if f.endswith((".py", ".ipynb")) and not f.startswith(".")
        ]
    return sorted(found)


def load_source(path: Path) -> tuple[str, dict[int, str], list[str]]:
    """(code, line map, notes): a notebook's code cells joined, or the script itself."""
    if path.suffix == ".ipynb":
        return notebook_script(path)
    text = path.read_text(encoding="utf-8")
    if is_databricks_source(text):
        return databricks_script(text)
    return text, {}, []


def analyse(
    path: Path,
    names: set[str] | None = None,
    project: Project | None = None,
    argv: list[str] | None = None,
) -> FileResult:
    """Analyse one file; a syntax error becomes an error result naming file:line:col.

    `project`: the files migrated together (a job module a driver imports is migrated with
    the driver, not on its own); `argv`: the command line the scripts run with."""
    try:
        code, line_map, notes = load_source(path)
        analysis = analyze(path, code, line_map)
    except MigrationSyntaxError as exc:
        return FileResult(path, path.stem, "error", error=str(exc))
    except (OSError, ValueError) as exc:
        return FileResult(path, path.stem, "error", error=f"{path}: cannot read: {exc}")
    driver = project.driver_of(path) if project is not None else None
    if driver is not None and not layout(analysis).flow:
        return FileResult(
            path, analysis.name, "module", analysis, error=f"a module {driver.name} imports"
        )
    if names is not None:
        base, k = analysis.name, 2
        while analysis.name in names:
            analysis.name, k = f"{base}_{k}", k + 1
        names.add(analysis.name)
    analysis.notes = notes + analysis.notes
    if uses_script_file(analysis):
        note = (
            "the script uses `__file__`: it becomes `SCRIPT_FILE`, the original script's path "
            "found from the generated package by a relative path, so paths built from it still "
            "point next to the original script (move the two together)"
        )
        analysis.notes.append(note)
        notes = [*notes, note]
    result = FileResult(path, analysis.name, "migrated", analysis, code=code, notes=analysis.notes)
    result.argv = list(argv or [])
    result.source_notes = list(notes)
    _choose(result, analysis, code)
    return result


def _choose(result: FileResult, analysis: Analysis, code: str) -> None:
    """Migratable or reported, and how: Factories per unit when the split is safe, else the
    whole script as one Factory (`why_whole` says why)."""
    import ast

    tree = ast.parse(code)
    streaming = [p for p in analysis.problems if "streaming" in p.reason]
    if streaming:
        result.status = "reported"
        result.findings = scan(tree, whole_script=False)
        return
    plan = layout(analysis)
    if not plan.flow:
        defined = [
            n.name
            for n in tree.body
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        ]
        result.status = "reported"
        result.reasons.append(
            (
                "the whole file",
                "no entry point: nothing runs when the script runs"
                + (f" (it only defines {', '.join(defined[:6])})" if defined else "")
                + ": migrate the driver that imports and calls it, or add a `__main__` block",
            )
        )
        result.findings = scan(tree, whole_script=False)
        return
    if not has_sink(analysis.path, tree, plan.local_modules):
        result.status = "reported"
        result.reasons.append(
            (
                "the whole file",
                "no sink: the script writes no data (no DataFrame write, saveAsTable, "
                "insertInto, to_csv or file opened for writing), so a pipeline of it would "
                "produce nothing; its output is what it shows or prints (listed below)",
            )
        )
        result.findings = scan(tree, whole_script=False)
        return
    why = _why_whole(analysis, tree, plan.local_modules)
    printed = [f for f in scan(tree, whole_script=False) if f.kind == "print of data"]
    if not why and printed:
        why = (
            f"{analysis.where(printed[0].line)}: `{printed[0].code}` prints collected data, "
            "the script's output: the split would drop it"
        )
    if why:
        result.go_whole(why)
    result.findings = scan(
        tree, whole_script=result.mode == "whole", factory=factory_name(analysis)
    )


def _why_whole(analysis: Analysis, tree: object, local_modules: list[str]) -> str:
    """Why the unit-by-unit split is not safe for this script (empty: it is)."""
    import ast

    assert isinstance(tree, ast.Module)
    if analysis.problems:
        p = analysis.problems[0]
        return f"{analysis.where(p.line)}: {p.reason}"
    if local_modules:
        return f"it imports its project's own modules ({', '.join(sorted(set(local_modules)))})"
    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            return f"line {node.lineno}: `global` rebinds module names from a function"
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            argv = next((n for n in ast.walk(node) if ast.unparse(n) == "sys.argv"), None)
            if argv is not None:
                return (
                    f"line {getattr(argv, 'lineno', node.lineno)}: `{node.name}()` reads "
                    "`sys.argv` when it is called (split into Factories, it would read the "
                    "Dagster process's command line)"
                )
        if isinstance(node, ast.Call):
            func = ast.unparse(node.func)
            if func.split(".")[-1] in PARTITION_DEPENDENT:
                return (
                    f"line {node.lineno}: `{func}()` depends on how the rows are partitioned "
                    "(split into Factories, each output is stored and read back: its values "
                    "would change)"
                )
            if func.endswith(("import_module", "__import__")):
                return f"line {node.lineno}: a dynamic import ({func})"
            if func.split(".")[-1] in {"SparkContext", "SQLContext", "HiveContext"}:
                return f"line {node.lineno}: the script creates a {func.split('.')[-1]}"
    import libcst as cst

    for st in analysis.statements:
        if st.kind == "session" and not isinstance(st.node, cst.SimpleStatementLine):
            return (
                f"{analysis.span(st)}: the session is built inside a block with other code "
                "(the split would drop the block with the builder)"
            )
    if not any(u.is_sink for u in analysis.units if u.enabled):
        return "the split found no write among the statements it follows"
    order_issue = _prelude_after_data(analysis)
    if order_issue:
        return order_issue
    entry_preludes = [
        s
        for s in analysis.statements
        if s.kind == "prelude" and (not s.top_level or _in_guard(analysis, s))
    ]
    builders = [
        n.name
        for n in tree.body
        if isinstance(n, ast.FunctionDef)
        and any(isinstance(c, ast.Call) and "builder" in ast.unparse(c.func) for c in ast.walk(n))
    ]
    entry = _entry_name(tree)
    helpers = [b for b in builders if b != entry]
    if helpers:
        return f"a helper builds the SparkSession ({', '.join(helpers)}())"
    if entry_preludes:
        from .params import plan_config

        settings = {id(s.node) for s in plan_config(analysis).settings}
        loose = [s for s in entry_preludes if id(s.node) not in settings]
        if loose:
            return (
                f"{analysis.span(loose[0])}: code of the entry point that is not data "
                "(it would run when the package is imported)"
            )
    return ""


def _prelude_after_data(analysis: Analysis) -> str:
    """A statement kept at module level (it runs at import) that reads a name an earlier
    data statement touches (which runs later, in a Factory): the order would change, e.g.
    `config.read(path)` in a Factory and `config["paths"]` at import."""
    seen: dict[str, int] = {}
    for st in analysis.statements:
        if st.kind == "data":
            for name in (st.uses | st.defs) - analysis.spark_names:
                seen.setdefault(name, st.start)
        elif st.kind == "prelude":
            late = sorted(n for n in st.uses if n in seen)
            if late:
                return (
                    f"{analysis.span(st)} reads `{late[0]}` after line {seen[late[0]]} "
                    "changes it: split, one would run at import and the other in a Factory"
                )
    return ""


def _entry_name(tree: object) -> str:
    import ast

    assert isinstance(tree, ast.Module)
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    for node in tree.body:
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            for call in ast.walk(node):
                if (
                    isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Name)
                    and call.func.id in functions
                ):
                    return call.func.id
    return ""


def _in_guard(analysis: Analysis, st: object) -> bool:
    """Whether a top-level flow statement comes from the `__main__` block."""
    import libcst as cst

    from .analysis import _is_main_guard

    for node in analysis.module.body:
        if _is_main_guard(node):
            assert isinstance(node, cst.If)
            inner = node.body.body if isinstance(node.body, cst.IndentedBlock) else []
            return any(getattr(st, "node", None) is n for n in inner)
    return False


def render(result: FileResult, scratch: Path, out: Path | None = None) -> None:
    """Generate, format and lint the package of a migratable file into `result.files`
    (`out`: the output folder it will be written to)."""
    if result.analysis is None or not result.migratable:
        return
    if result.mode == "split":
        unbound = _render_package(result, scratch, out, whole=False)
        if not unbound:
            return
        first = unbound[0]
        result.go_whole(
            f"the split left `{first.name}` unbound in the generated code ({first.why})"
            if first.name != "sys.argv"
            else f"the split reads `sys.argv` in a Factory ({first.why})"
        )
        assert result.code
        import ast

        result.findings = scan(
            ast.parse(result.code), whole_script=True, factory=factory_name(result.analysis)
        )
    unbound = _render_package(result, scratch, out, whole=True)
    if unbound:
        result.status = "reported"
        result.files = {}
        result.reasons += [
            (f"generated line {u.line}", f"`{u.name}` would be unbound at run time: {u.why}")
            for u in unbound
        ]


def _render_package(
    result: FileResult, scratch: Path, out: Path | None, *, whole: bool
) -> list[Unbound]:
    """Generate, format and check one package; the unbound names it would hit (none: the
    package is in `result.files`)."""
    assert result.analysis is not None
    package = scratch / ("whole" if whole else "split") / result.name
    if package.exists():
        shutil.rmtree(package)
    package.mkdir(parents=True)
    package_dir = out / result.name if out is not None else None
    files = (
        generate_whole(result.analysis, package_dir, result.argv)
        if whole
        else generate(result.analysis, package_dir, result.argv)
    )
    for name, text in files.items():
        (package / name).write_text(text, encoding="utf-8")
    result.lint = format_package(package)
    result.files = {}
    unbound: list[Unbound] = []
    for file in sorted(package.iterdir()):
        if file.suffix == ".py":
            text = file.read_text(encoding="utf-8")
            result.files[f"{result.name}/{file.name}"] = text
            if file.name == "pipeline.py":
                unbound = unbound_names(text, str(file))
                if not whole:
                    unbound += raw_argv_reads(text, str(file))
    return unbound


def report_path(result: FileResult) -> str:
    return f"reports/{result.source.stem}.md"


def plan_text(results: list[FileResult]) -> str:
    """The plan `--dry-run` prints: per file, its Factories with line ranges and Stages."""
    lines: list[str] = []
    for r in results:
        lines.append(f"{r.source}: {r.status}")
        if r.status == "error":
            lines.append(f"  {r.error}")
        elif r.analysis is not None and r.status == "reported":
            for where, why in r.reasons:
                lines.append(f"  {where}: {why}")
            for p in r.analysis.problems if not r.reasons else []:
                lines.append(f"  {r.analysis.where(p.line)}: {p.reason}")
        elif r.status == "module":
            lines.append(f"  {r.error}")
        elif r.analysis is not None and r.mode == "whole":
            lines.append(
                f"  one Factory {factory_name(r.analysis)} (the whole script): {r.why_whole}"
            )
        elif r.analysis is not None:
            for u in sorted(r.analysis.units, key=lambda u: (u.stage, u.uid)):
                if u.enabled:
                    lines.append(f"  stage {u.stage} {u.name:<24} lines {u.lines}")
    return "\n".join(lines)


def diff_text(out: Path, files: dict[str, str]) -> str:
    """A unified diff of what the run would write against what `out` holds."""
    chunks: list[str] = []
    for rel, text in sorted(files.items()):
        target = out / rel
        old = target.read_text(encoding="utf-8").splitlines(True) if target.exists() else []
        chunks.extend(difflib.unified_diff(old, text.splitlines(True), f"a/{rel}", f"b/{rel}"))
    return "".join(chunks)


def all_files(results: list[FileResult]) -> dict[str, str]:
    files: dict[str, str] = {}
    for r in results:
        files.update(r.files)
        files[report_path(r)] = render_report(r)
    files["SUMMARY.md"] = render_summary(results)
    return files


def write_outputs(
    out: Path, files: dict[str, str], *, force: bool, keep_backup: bool = True
) -> Path | None:
    """Write `files` under `out`; back up what they replace (and the last run's files).

    Returns the backup folder, if anything was backed up. Each file is written atomically
    (a temporary file renamed over it). `keep_backup=False`: the run's own files are rewritten
    (reports after verification), nothing is backed up.
    """
    if not keep_backup:
        for rel, text in files.items():
            _write_atomic(out / rel, text)
        return None
    existing = [rel for rel in files if (out / rel).exists()]
    if existing and not force:
        shown = ", ".join(existing[:5]) + (" ..." if len(existing) > 5 else "")
        raise MigrationError(
            f"{len(existing)} file(s) exist already in {out} ({shown}): re-run with --force "
            "to replace them (the current ones are kept as a backup for --restore)"
        )
    previous = _manifest(out)
    to_backup = sorted({*existing, *(p for p in previous if (out / p).exists())})
    backup: Path | None = None
    if to_backup:
        backup = out / BACKUPS / time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        k = 1
        while backup.exists():
            backup = backup.with_name(f"{backup.name.split('-')[0]}-{k}")
            k += 1
        for rel in to_backup:
            target = backup / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(out / rel), target)
        (backup / MANIFEST).write_text(json.dumps(sorted(to_backup), indent=1))
    for rel, text in files.items():
        _write_atomic(out / rel, text)
    _write_atomic(out / MANIFEST, json.dumps(sorted(files), indent=1))
    return backup


def _write_atomic(target: Path, text: str) -> None:
    """Write `text` to `target` through a temporary file renamed over it: a reader sees the
    old file or the new one, never half of one."""
    import os
    import tempfile

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _manifest(out: Path) -> list[str]:
    path = out / MANIFEST
    return json.loads(path.read_text()) if path.exists() else []


def restore(out: Path) -> Path:
    """Bring back the newest backup of `out`: the current run's files are removed first."""
    backups = sorted((out / BACKUPS).glob("*")) if (out / BACKUPS).exists() else []
    if not backups:
        raise MigrationError(f"{out} has no backup to restore (nothing under {out / BACKUPS})")
    latest = backups[-1]
    for rel in _manifest(out):
        (out / rel).unlink(missing_ok=True)
    restored = json.loads((latest / MANIFEST).read_text())
    for rel in restored:
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(latest / rel), target)
    (out / MANIFEST).write_text(json.dumps(restored, indent=1))
    shutil.rmtree(latest)
    folders = sorted((p for p in out.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
    for folder in folders:
        if not any(folder.iterdir()):
            folder.rmdir()
    return latest


def verify_results(
    results: list[FileResult],
    out: Path,
    workdir: Path,
    *,
    inputs_dir: Path | None = None,
    argv: list[str] | None = None,
    scratch: Path | None = None,
    on_done: Callable[[FileResult], None] | None = None,
    parallel: int = 2,
) -> None:
    """Run `--verify` for every migrated file (see `verify.py`).

    A split into Factories that fails or differs where the original ran is not kept: the file
    is generated again as one Factory running the whole script (`whole.py`), written over the
    split in `out`, and verified again; the report says what the split did."""
    by_name = {r.name: r for r in results if r.migratable and r.analysis is not None}
    workdir.mkdir(parents=True, exist_ok=True)
    env = _verify_environment(workdir)

    def one(r: FileResult) -> FileResult:
        assert r.analysis is not None
        item = VerifyItem(
            name=r.name,
            script=r.source.resolve(),
            code=r.code,
            package_dir=out.resolve(),
            env_var=args_env_var(r.analysis),
            inputs_dir=(inputs_dir or r.source.parent).resolve(),
            argv=list(argv or []),
        )
        outcome = verify_one(item, workdir, env)
        if not outcome.equal and r.mode == "split" and _original_ran(outcome):
            first = outcome.differences[0] if outcome.differences else "failed"
            r.go_whole(f"the split into Factories verified different: {first[:300]}")
            r.findings = _rescan(r)
            unbound = _render_package(r, scratch or workdir / "_render", out, whole=True)
            if unbound:
                r.status = "reported"
                r.reasons += [
                    (f"generated line {u.line}", f"`{u.name}` would be unbound: {u.why}")
                    for u in unbound
                ]
            else:
                write_outputs(out, r.files, force=True, keep_backup=False)
                outcome = verify_one(item, workdir, env)
        r.verify = outcome
        return r

    # Each file runs two processes (one Spark application each); `parallel` files at a time.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        for done in pool.map(one, by_name.values()):
            if on_done is not None:
                on_done(done)


def _original_ran(outcome: VerifyResult) -> bool:
    return not any(d.startswith("the original script failed") for d in outcome.differences)


def _rescan(r: FileResult) -> list[Finding]:
    import ast

    assert r.analysis is not None
    return scan(ast.parse(r.code), whole_script=True, factory=factory_name(r.analysis))
