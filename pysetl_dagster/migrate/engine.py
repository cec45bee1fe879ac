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
from dataclasses import dataclass, field
from pathlib import Path

from .analysis import Analysis, MigrationSyntaxError, analyze
from .codegen import args_env_var, format_package, generate, uses_script_file
from .notebook import notebook_script
from .report import render_report, render_summary
from .verify import VerifyItem, VerifyResult, verify_many

MANIFEST = ".pysetl-migrate.json"
BACKUPS = ".backups"


class MigrationError(Exception):
    """The migration cannot go ahead (e.g. it would overwrite files without `--force`)."""


@dataclass
class FileResult:
    """What happened to one source file."""

    source: Path
    name: str
    status: str  # "migrated" | "reported" | "error"
    analysis: Analysis | None = None
    code: str = ""
    error: str = ""
    notes: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # path relative to OUT -> text
    lint: list[str] = field(default_factory=list)
    verify: VerifyResult | None = None

    @property
    def migratable(self) -> bool:
        return self.status == "migrated"

    def verdict(self) -> str:
        if self.status == "error":
            return self.error
        if self.status == "reported":
            assert self.analysis is not None
            first = self.analysis.problems[0]
            return f"not migrated: {self.analysis.where(first.line)}: {first.reason}"
        if self.verify is None:
            return "not verified (run with --verify)"
        return ("verified: " if self.verify.equal else "DIFFERENT: ") + self.verify.summary()


def discover(source: Path) -> list[Path]:
    """The scripts and notebooks to migrate: `source` itself, or those in the folder (sorted)."""
    if not source.exists():
        raise MigrationError(f"{source} does not exist: give a .py file, a .ipynb or a folder")
    if source.is_file():
        if source.suffix not in (".py", ".ipynb"):
            raise MigrationError(f"{source} is neither a .py script nor a .ipynb notebook")
        return [source]
    return sorted(
        p
        for p in source.rglob("*")
        if p.suffix in (".py", ".ipynb")
        and p.is_file()
        and not any(part.startswith(".") or part == "__pycache__" for part in p.parts)
    )


def load_source(path: Path) -> tuple[str, dict[int, str], list[str]]:
    """(code, line map, notes): a notebook's code cells joined, or the script itself."""
    if path.suffix == ".ipynb":
        return notebook_script(path)
    return path.read_text(encoding="utf-8"), {}, []


def analyse(path: Path, names: set[str] | None = None) -> FileResult:
    """Analyse one file; a syntax error becomes an error result naming file:line:col."""
    try:
        code, line_map, notes = load_source(path)
        analysis = analyze(path, code, line_map)
    except MigrationSyntaxError as exc:
        return FileResult(path, path.stem, "error", error=str(exc))
    except (OSError, ValueError) as exc:
        return FileResult(path, path.stem, "error", error=f"{path}: cannot read: {exc}")
    if names is not None:
        base, k = analysis.name, 2
        while analysis.name in names:
            analysis.name, k = f"{base}_{k}", k + 1
        names.add(analysis.name)
    analysis.notes = notes + analysis.notes
    if uses_script_file(analysis):
        analysis.notes.append(
            "the script uses `__file__`: it becomes `SCRIPT_FILE`, the original script's path "
            "found from the generated package by a relative path, so paths built from it still "
            "point next to the original script (move the two together)"
        )
    status = "migrated" if analysis.migratable else "reported"
    return FileResult(path, analysis.name, status, analysis, code=code, notes=analysis.notes)


def render(result: FileResult, scratch: Path, out: Path | None = None) -> None:
    """Generate, format and lint the package of a migratable file into `result.files`
    (`out`: the output folder it will be written to)."""
    if result.analysis is None:
        return
    if result.migratable:
        package = scratch / result.name
        package.mkdir(parents=True, exist_ok=True)
        package_dir = out / result.name if out is not None else None
        for name, text in generate(result.analysis, package_dir).items():
            (package / name).write_text(text, encoding="utf-8")
        result.lint = format_package(package)
        for file in sorted(package.iterdir()):
            if file.suffix == ".py":
                result.files[f"{result.name}/{file.name}"] = file.read_text(encoding="utf-8")


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
            for p in r.analysis.problems:
                lines.append(f"  {r.analysis.where(p.line)}: {p.reason}")
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


def write_outputs(out: Path, files: dict[str, str], *, force: bool) -> Path | None:
    """Write `files` under `out`; back up what they replace (and the last run's files).

    Returns the backup folder, if anything was backed up.
    """
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
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    (out / MANIFEST).write_text(json.dumps(sorted(files), indent=1))
    return backup


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
    on_done: Callable[[FileResult], None] | None = None,
    batch_size: int = 16,
) -> None:
    """Run `--verify` for every migrated file (see `verify.py`)."""
    items = []
    by_name = {}
    for r in results:
        if not r.migratable or r.analysis is None:
            continue
        by_name[r.name] = r
        items.append(
            VerifyItem(
                name=r.name,
                script=r.source.resolve(),
                code=r.code,
                package_dir=out.resolve(),
                env_var=args_env_var(r.analysis),
                inputs_dir=(inputs_dir or r.source.parent).resolve(),
                argv=list(argv or []),
            )
        )
    workdir.mkdir(parents=True, exist_ok=True)
    for name, outcome in verify_many(items, workdir, batch_size=batch_size).items():
        by_name[name].verify = outcome
        if on_done is not None:
            on_done(by_name[name])
