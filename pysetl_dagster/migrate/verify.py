"""`--verify`: run the original script and the generated pipeline, compare every sink.

Each side runs in its own Python process (one JVM, `local[1]`) in its own sandbox folder: a
folder holding symlinks to every entry of the inputs folder (the script's folder by default),
so relative input paths resolve the same way while anything a run writes lands in its own
sandbox. Several scripts share one process per side to keep JVM start-ups down.

Writes outside a side's sandbox (absolute paths, URIs, `..`) are mapped into each side's
sandbox under `_outside/` by the worker, never made for real (see `verify_worker.py`).

A sink is a folder with Spark's `_SUCCESS` marker. Both sides must write the same sinks, and
each pair must hold the same schema and the same rows in any order: Parquet/ORC through
pyarrow (Hive partition folders included), CSV/JSON/text as the multiset of their lines.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class VerifyItem:
    """One source to verify."""

    name: str
    script: Path  # the original .py, or the notebook
    code: str  # the script's code (a notebook's code cells)
    package_dir: Path  # OUT, holding the generated package `name`
    env_var: str
    inputs_dir: Path
    argv: list[str] = field(default_factory=list)


@dataclass
class VerifyResult:
    """Equal, or what differs (or why a side failed)."""

    name: str
    equal: bool
    sinks: list[str]
    differences: list[str]
    sizes: dict[str, str] = field(default_factory=dict)  # sink -> "3 rows" / "4 lines"
    redirected: dict[str, str] = field(default_factory=dict)  # script's path -> sandbox sink

    def summary(self) -> str:
        if self.equal:
            return f"equal ({len(self.sinks)} sinks)"
        return "; ".join(self.differences[:3])


def _sandbox(inputs_dir: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for entry in inputs_dir.iterdir():
        link = target / entry.name
        if not link.exists():
            link.symlink_to(entry.resolve(), target_is_directory=entry.is_dir())


def verify_many(
    items: list[VerifyItem], workdir: Path, *, batch_size: int = 8, timeout: float = 600
) -> dict[str, VerifyResult]:
    """Verify every item; both sides of a batch run concurrently (two processes)."""
    results: dict[str, VerifyResult] = {}
    for start in range(0, len(items), batch_size):
        batch = items[start : start + batch_size]
        procs = []
        for side in ("original", "generated"):
            spec = {
                "side": side,
                "warehouse": str(workdir / f"{side}-warehouse-{start}"),
                "items": [
                    {
                        "name": it.name,
                        "script": str(it.script),
                        "code": it.code,
                        "sandbox": str(_side_dir(workdir, it, side)),
                        "argv": it.argv,
                        "package_dir": str(it.package_dir),
                        "env_var": it.env_var,
                        "storage": str(workdir / it.name / "pysetl_storage"),
                    }
                    for it in batch
                ],
            }
            for it in batch:
                _sandbox(it.inputs_dir, _side_dir(workdir, it, side))
            spec_path = workdir / f"{side}-{start}.json"
            spec_path.write_text(json.dumps(spec))
            log = (workdir / f"{side}-{start}.log").open("w")
            env = dict(os.environ)
            env.setdefault("PYSPARK_PYTHON", sys.executable)
            procs.append(
                (
                    side,
                    spec_path,
                    log,
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "pysetl_dagster.migrate.verify_worker",
                            str(spec_path),
                        ],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        env=env,
                    ),
                )
            )
        outcomes: dict[str, dict[str, Any]] = {}
        for side, spec_path, log, proc in procs:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
            result_path = spec_path.with_suffix(".result.json")
            if result_path.exists():
                outcomes[side] = json.loads(result_path.read_text())
            else:
                tail = (workdir / f"{side}-{start}.log").read_text()[-2000:]
                outcomes[side] = {
                    it.name: {"ok": False, "error": f"{side} worker died: {tail}"} for it in batch
                }
        for it in batch:
            results[it.name] = _compare_item(
                it, workdir, outcomes["original"][it.name], outcomes["generated"][it.name]
            )
    return results


def _side_dir(workdir: Path, item: VerifyItem, side: str) -> Path:
    return workdir / item.name / side


def _compare_item(
    item: VerifyItem, workdir: Path, original: dict[str, Any], generated: dict[str, Any]
) -> VerifyResult:
    problems: list[str] = []
    if not original["ok"]:
        problems.append(f"the original script failed: {original['error']}")
    if not generated["ok"]:
        problems.append(f"the generated pipeline failed: {generated['error']}")
    if problems:
        return VerifyResult(item.name, False, [], problems)
    a, b = _side_dir(workdir, item, "original"), _side_dir(workdir, item, "generated")
    sinks_a, sinks_b = find_sinks(a), find_sinks(b)
    differences: list[str] = []
    for only, side in ((sinks_a - sinks_b, "original"), (sinks_b - sinks_a, "generated")):
        for sink in sorted(only):
            differences.append(f"sink {sink} is written only by the {side}")
    sizes: dict[str, str] = {}
    for sink in sorted(sinks_a & sinks_b):
        diffs, sizes[sink] = compare_sink(a / sink, b / sink)
        differences += [f"sink {sink}: {d}" for d in diffs]
    if not sinks_a and not differences:
        differences.append("the original script wrote no sink (no folder with _SUCCESS)")
    redirected = {**generated.get("redirected", {}), **original.get("redirected", {})}
    return VerifyResult(
        item.name, not differences, sorted(sinks_a | sinks_b), differences, sizes, redirected
    )


def find_sinks(root: Path) -> set[str]:
    """Folders (relative to `root`) holding a `_SUCCESS` marker, symlinks not followed."""
    sinks: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = [d for d in dirnames if not (Path(dirpath) / d).is_symlink()]
        if "_SUCCESS" in filenames:
            sinks.add(str(Path(dirpath).relative_to(root)))
    return sinks


def _data_files(sink: Path) -> list[Path]:
    return sorted(
        p
        for p in sink.rglob("*")
        if p.is_file() and not p.name.startswith(("_", ".")) and not p.name.endswith(".crc")
    )


def _format(files: list[Path]) -> str:
    names = " ".join(p.name for p in files)
    for fmt in ("parquet", "orc", "json", "csv"):
        if f".{fmt}" in names:
            return fmt
    return "text"


def compare_sink(a: Path, b: Path) -> tuple[list[str], str]:
    """Differences between two outputs of one sink (empty: equal), and the original's size
    (`3 rows` for Parquet/ORC; `4 lines` for text formats, headers included)."""
    files_a, files_b = _data_files(a), _data_files(b)
    fmt_a, fmt_b = _format(files_a), _format(files_b)
    if fmt_a != fmt_b and files_a and files_b:
        return [f"format {fmt_a} vs {fmt_b}"], ""
    parts_a = {str(p.parent.relative_to(a)) for p in files_a}
    parts_b = {str(p.parent.relative_to(b)) for p in files_b}
    if parts_a != parts_b:
        return [f"partition folders differ: {sorted(parts_a ^ parts_b)[:5]}"], ""
    if fmt_a in ("parquet", "orc"):
        schema_a, rows_a = _arrow_rows(a, fmt_a, files_a)
        schema_b, rows_b = _arrow_rows(b, fmt_a, files_b)
    else:
        # A CSV header repeats in every part file: strip it when all files on both sides agree.
        firsts = {
            (p.read_text(encoding="utf-8").splitlines() or [""])[0] for p in files_a + files_b
        }
        strip = fmt_a == "csv" and len(firsts) == 1 and len(files_a) + len(files_b) > 2
        schema_a, rows_a = _line_rows(a, files_a, strip)
        schema_b, rows_b = _line_rows(b, files_b, strip)
    diffs: list[str] = []
    if schema_a != schema_b:
        diffs.append(f"schema {schema_a} vs {schema_b}")
    if rows_a != rows_b:
        only_a = list((rows_a - rows_b).elements())[:3]
        only_b = list((rows_b - rows_a).elements())[:3]
        diffs.append(
            f"rows differ ({sum(rows_a.values())} vs {sum(rows_b.values())}); only in the "
            f"original: {only_a}; only in the generated: {only_b}"
        )
    unit = "rows" if fmt_a in ("parquet", "orc") else "lines"
    return diffs, f"{sum(rows_a.values())} {unit}"


def _arrow_rows(
    root: Path, fmt: str, files: list[Path]
) -> tuple[list[str], collections.Counter[str]]:
    import pyarrow.dataset as ds

    if not files:
        return [], collections.Counter()
    dataset = ds.dataset(
        [str(f) for f in files], format=fmt, partitioning="hive", partition_base_dir=str(root)
    )
    table = dataset.to_table()
    schema = [f"{f.name}:{f.type}" for f in table.schema]
    rows = collections.Counter(repr(tuple(sorted(r.items()))) for r in table.to_pylist())
    return schema, rows


def _line_rows(
    root: Path, files: list[Path], strip_header: bool
) -> tuple[list[str], collections.Counter[str]]:
    contents = [(f, f.read_text(encoding="utf-8").splitlines()) for f in files]
    header = sorted({lines[0] for _, lines in contents if lines}) if strip_header else []
    rows: collections.Counter[str] = collections.Counter()
    for f, lines in contents:
        prefix = str(f.parent.relative_to(root))
        body = lines[1:] if header and lines else lines
        rows.update(f"{prefix}|{line}" for line in body)
    return header, rows
