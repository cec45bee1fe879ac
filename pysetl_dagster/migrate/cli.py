"""`pysetl-dagster migrate`: the command line of the migration tool.

pysetl-dagster migrate legacy/ --out migrated/ --verify
pysetl-dagster migrate job.py --out migrated/ --dry-run
pysetl-dagster migrate notebook.ipynb --out migrated/ --interactive
pysetl-dagster migrate --restore migrated/
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from .result import FileResult

# rich and the engine (libcst, nbformat) are imported when `migrate` runs, not when
# `pysetl-dagster` registers this command's arguments for its other commands.


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `migrate` on the main parser."""
    cmd = commands.add_parser(
        "migrate", help="turn PySpark scripts/notebooks into PySetl Factories and Dagster assets"
    )
    cmd.add_argument("source", nargs="?", help="a .py script, a .ipynb notebook or a folder")
    cmd.add_argument("--out", help="output folder for the generated packages and reports")
    cmd.add_argument("--verify", action="store_true", help="run script and pipeline, compare")
    cmd.add_argument("--force", action="store_true", help="replace existing files (backed up)")
    cmd.add_argument("--dry-run", action="store_true", help="print the plan and a diff only")
    cmd.add_argument("--restore", metavar="DIR", help="bring back the previous result in DIR")
    cmd.add_argument("--interactive", action="store_true", help="review units before writing")
    cmd.add_argument("--inputs", help="folder the scripts' relative paths resolve in (verify)")
    cmd.add_argument(
        "--parallel", type=int, default=2, help="files verified at a time (two processes each)"
    )
    cmd.add_argument(
        "--args",
        default="",
        help="command line for every script; its pipeline gets it as Config defaults (verify); "
        "one quoted string, written --args='--flag value' when it starts with a dash",
    )


def run(args: argparse.Namespace, stdin: TextIO | None = None) -> int:
    from rich.console import Console

    from .engine import MigrationError, restore

    """Execute `migrate` with parsed arguments; returns the exit code."""
    console = Console(stderr=False, highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        if args.restore:
            backup = restore(Path(args.restore))
            console.print(f"restored {args.restore} from backup {backup.name}")
            return 0
        if not args.source or not args.out:
            err.print("error: give SOURCE and --out DIR (or --restore DIR)")
            return 2
        return _migrate(args, console, stdin or sys.stdin)
    except MigrationError as exc:
        err.print(f"error: {exc}")
        return 1


def _migrate(args: argparse.Namespace, console: Console, stdin: TextIO) -> int:
    from .engine import (
        all_files,
        analyse,
        diff_text,
        discover,
        plan_text,
        render,
        verify_results,
        write_outputs,
    )
    from .project import Project

    out = Path(args.out)
    paths = discover(Path(args.source))
    project = Project.of(paths)
    argv = shlex.split(args.args)
    names: set[str] = set()
    results: list[FileResult] = []
    with tempfile.TemporaryDirectory(prefix="pysetl-migrate-") as scratch:
        with _progress(console) as progress:
            task = progress.add_task("analysing", total=len(paths))
            for path in paths:
                progress.update(task, description=f"analysing {path.name}")
                result = analyse(path, names, project, argv)
                if args.interactive and result.migratable and result.analysis is not None:
                    from .wizard import review

                    progress.stop()
                    review(result.analysis, stdin, console)
                    progress.start()
                render(result, Path(scratch), out)
                results.append(result)
                progress.advance(task)
        for r in results:
            if r.status == "error":
                console.print(f"[red]error[/red] {r.error}")
        files = all_files(results)
        if args.dry_run:
            console.print(plan_text(results))
            console.print(diff_text(out, files), markup=False)
            return exit_code(results)
        backup = write_outputs(out, files, force=args.force)
        if backup is not None:
            console.print(
                f"previous files backed up to {backup} (--restore {out} brings them back)"
            )
        if args.verify:
            migrated = [r for r in results if r.migratable]
            with _progress(console) as progress:
                task = progress.add_task("verifying", total=len(migrated))
                verify_results(
                    results,
                    out,
                    Path(scratch) / "verify",
                    inputs_dir=Path(args.inputs) if args.inputs else None,
                    argv=argv,
                    scratch=Path(scratch),
                    parallel=args.parallel,
                    on_done=lambda _: progress.advance(task),
                )
            files = all_files(results)
            write_outputs(out, files, force=True, keep_backup=False)
    console.print(summary_table(results))
    return exit_code(results)


def exit_code(results: list[FileResult]) -> int:
    """1 when any file was reported, did not parse or verified different (a CI job using the
    migration notices), else 0."""
    failed = [
        r
        for r in results
        if r.status in ("reported", "error") or (r.verify is not None and not r.verify.equal)
    ]
    return 1 if failed else 0


def _progress(console: Console) -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
    )


def summary_table(results: list[FileResult]) -> Table:
    from rich.table import Table

    from .report import counts

    """File, Factories, sinks, verified or why not."""
    table = Table(title="pysetl-dagster migrate")
    for column in ("File", "Factories", "Sinks", "Result"):
        table.add_column(column)
    for r in results:
        factories, sinks = counts(r)
        table.add_row(r.source.name, str(factories), str(sinks), r.verdict())
    return table
