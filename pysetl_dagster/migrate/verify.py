"""`--verify`: run the original script and the generated pipeline as a user would, compare.

Both sides run in fresh processes, each in its own sandbox folder (symlinks to every entry of
the inputs folder, so relative input paths resolve the same way while whatever a run writes
lands in its own sandbox), concurrently:

* the original as `python script.py ARGS`: its own session builder, config and `stop()`;
* the pipeline as `dagster asset materialize -m <name>.definitions --select '*'`: the real
  Dagster asset path, its Spark resource, its IO manager (storage outside the sandbox).

Each process records the sinks it writes from the write calls themselves (`verify_hooks.py`,
installed by a `sitecustomize` on the sandbox's `PYTHONPATH`): file paths of the DataFrame
writer (any format, `partitionBy`, dynamic overwrite without `_SUCCESS`), pandas' `to_csv`,
RDD text files, and tables (`saveAsTable`, `insertInto`, SQL `CREATE TABLE`/`INSERT`, all
under the sandbox's own `spark-warehouse`). Writes outside the sandbox are kept inside it.

Every sink either side wrote is compared order-insensitively: column names and types, and the
multiset of rows (Parquet/ORC through pyarrow, Hive partition folders included; CSV/JSON/text
as line multisets). A difference names the sink and shows the first differing rows.
"""

from __future__ import annotations

import collections
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .jvm import verify_submit_args
from .verify_hooks import SITECUSTOMIZE

WAREHOUSE = "spark-warehouse"


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
    seconds: float = 0.0  # wall time of the two runs (concurrent)
    generated_failed: bool = False  # the pipeline failed while the original ran

    def summary(self) -> str:
        if self.equal:
            return f"equal ({len(self.sinks)} sinks)"
        return "; ".join(self.differences[:3])


def _sandbox(inputs_dir: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for entry in inputs_dir.iterdir():
        if entry.name.startswith(".") or entry.name == "__pycache__":
            continue
        link = target / entry.name
        link.symlink_to(entry.resolve(), target_is_directory=entry.is_dir())


def _environment(workdir: Path) -> dict[str, str]:
    """The environment both sides share: the hook on `PYTHONPATH`, Spark defaults."""
    hooks = workdir / "_hooks"
    hooks.mkdir(parents=True, exist_ok=True)
    (hooks / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(hooks), *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]]
    )
    # Spark defaults for small inputs and a fast-starting JVM (jvm.py), the user's own last
    env["PYSPARK_SUBMIT_ARGS"] = verify_submit_args(os.environ.get("PYSPARK_SUBMIT_ARGS"))
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _text(script: Path) -> str:
    try:
        return script.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def _dagster() -> list[str]:
    beside = Path(sys.executable).parent / "dagster"
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "dagster"]


def _commands(item: VerifyItem, workdir: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    """The two runs of `item`: command, folder, environment, record and log files."""
    runs = []
    for side in ("original", "generated"):
        sandbox = _side_dir(workdir, item, side)
        _sandbox(item.inputs_dir, sandbox)
        side_env = dict(env)
        side_env["PYSETL_VERIFY_SINKS"] = str(workdir / item.name / f"{side}.sinks.jsonl")
        side_env["PYSETL_DAGSTER_STORAGE"] = str(workdir / item.name / f"{side}-storage")
        home = workdir / item.name / f"{side}-dagster-home"  # its own instance, kept here
        home.mkdir(parents=True, exist_ok=True)
        side_env["DAGSTER_HOME"] = str(home)
        if side == "original":
            script = item.script
            if script.suffix == ".ipynb" or item.code != _text(script):
                # a notebook: its code cells, magics commented out (a Databricks export: with
                # the `spark` its cluster would define)
                script = workdir / item.name / f"{item.name}_notebook.py"
                script.write_text(item.code, encoding="utf-8")
                side_env["PYTHONPATH"] += os.pathsep + str(item.script.parent)
            command = [sys.executable, str(script), *item.argv]
        else:
            side_env["PYTHONPATH"] += os.pathsep + str(item.package_dir)
            side_env[item.env_var] = " ".join(item.argv)
            command = [
                *_dagster(),
                "asset",
                "materialize",
                "-d",
                str(item.package_dir),  # its package, never a same-named script in the sandbox
                "-m",
                f"{item.name}.definitions",
                "--select",
                "*",
            ]
        Path(side_env["PYSETL_VERIFY_SINKS"]).unlink(missing_ok=True)
        runs.append(
            {
                "side": side,
                "command": command,
                "cwd": sandbox,
                "env": side_env,
                "record": Path(side_env["PYSETL_VERIFY_SINKS"]),
                "log": workdir / item.name / f"{side}.log",
            }
        )
    return runs


def verify_many(
    items: list[VerifyItem], workdir: Path, *, timeout: float = 600
) -> dict[str, VerifyResult]:
    """Verify every item: its two runs concurrently, items one after the other (each run
    starts one Spark application)."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = _environment(workdir)
    return {it.name: verify_one(it, workdir, env, timeout=timeout) for it in items}


def verify_one(
    item: VerifyItem, workdir: Path, env: dict[str, str], *, timeout: float = 600
) -> VerifyResult:
    """Run both sides of `item` and compare their sinks."""
    start = time.perf_counter()
    runs = _commands(item, workdir, env)
    procs = []
    for run in runs:
        log = run["log"].open("w")
        proc = subprocess.Popen(
            run["command"], cwd=run["cwd"], env=run["env"], stdout=log, stderr=subprocess.STDOUT
        )
        procs.append((run, log, proc))
    outcomes: dict[str, dict[str, Any]] = {}
    try:
        codes = [_wait(proc, timeout) for _, _, proc in procs]
    finally:  # interrupted: no run outlives the migration
        for _, log, proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
    for (run, _, _), code in zip(procs, codes, strict=True):
        text = run["log"].read_text(errors="replace")
        outcomes[run["side"]] = {
            "ok": code == 0,
            "error": f"exit status {code}: " + _tail(text) if code else "",
            "record": run["record"],
            "sandbox": run["cwd"],
        }
    result = _compare_item(item, outcomes["original"], outcomes["generated"])
    result.seconds = time.perf_counter() - start
    return result


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return -9


def _tail(log: str, lines: int = 12) -> str:
    """The end of a failed run's output: the exception, without Spark's log noise."""
    kept = [
        ln
        for ln in log.splitlines()
        if ln.strip() and " WARN " not in ln and " INFO " not in ln and "log4j" not in ln
    ]
    causes = [i for i, ln in enumerate(kept) if ln.strip().startswith(_CAUSE_MARKERS)]
    if causes:  # Dagster wraps the step's exception: show the script's own
        kept = kept[causes[0] + 1 :]
    errors = [i for i, ln in enumerate(kept) if re.match(r"^\s*[\w.]*(Error|Exception)\b", ln)]
    if errors:  # the first exception raised is the cause; later ones are the unwinding
        first = errors[0]
        block = [kept[first]]
        for ln in kept[first + 1 : first + 60]:  # its message (a worker's own traceback)
            if ln.startswith(("Stack Trace", "\tat ", "    at ")) or ln.strip().startswith("at "):
                break
            block.append(ln)
        message = block[:1] + [ln for ln in block[1:] if not ln.strip().startswith("File ")][-4:]
        trace = kept[first + len(block) :]
        frames = [ln for ln in trace if ln.startswith("  ")][-4:]  # where it was raised, code
        kept = kept[max(0, first - lines) : first] + message + frames
    return "\n".join(kept[-lines:])[-1500:]


_CAUSE_MARKERS = (
    "The above exception was caused by the following exception",
    "The above exception was the direct cause",
)


def _side_dir(workdir: Path, item: VerifyItem, side: str) -> Path:
    return workdir / item.name / side


def recorded_sinks(
    record: Path, sandbox: Path, redirected: dict[str, str] | None = None
) -> dict[str, str]:
    """Sink (relative to the sandbox) -> how it was written, from the record file and the
    sandbox's warehouse (tables, whichever way they were written); `redirected` receives
    the paths outside the sandbox the script asked for and where they were kept."""
    sinks: dict[str, str] = {}
    lines = record.read_text(encoding="utf-8").splitlines() if record.exists() else []
    root = sandbox.resolve()
    for line in lines:
        entry = json.loads(line)
        if entry["kind"] == "path":
            target = Path(entry["target"])
            target = target if target.is_absolute() else root / target
            try:
                key = str(target.resolve().relative_to(root))
            except ValueError:
                key = str(target)
            sinks[key] = entry["method"]
            if entry.get("asked") and redirected is not None:
                redirected[entry["asked"]] = key
    warehouse = sandbox / WAREHOUSE
    if warehouse.is_dir():
        for table in sorted(warehouse.iterdir()):
            if table.is_dir() and table.suffix == ".db":
                for inner in sorted(table.iterdir()):
                    if inner.is_dir():
                        sinks[str(inner.relative_to(sandbox))] = "table"
            elif table.is_dir():
                sinks[str(table.relative_to(sandbox))] = "table"
    return sinks


def _compare_item(
    item: VerifyItem, original: dict[str, Any], generated: dict[str, Any]
) -> VerifyResult:
    problems: list[str] = []
    if not original["ok"]:
        problems.append(f"the original script failed ({original['error']})")
    if not generated["ok"]:
        problems.append(f"the generated pipeline failed ({generated['error']})")
    if problems:
        failed = VerifyResult(item.name, False, [], problems)
        failed.generated_failed = original["ok"] and not generated["ok"]
        return failed
    a, b = original["sandbox"], generated["sandbox"]
    redirected: dict[str, str] = {}
    sinks_a = recorded_sinks(original["record"], a, redirected)
    sinks_b = recorded_sinks(generated["record"], b)
    differences: list[str] = []
    for only, side in (
        (sinks_a.keys() - sinks_b.keys(), "original"),
        (sinks_b.keys() - sinks_a.keys(), "generated"),
    ):
        for sink in sorted(only):
            differences.append(f"sink `{sink}` is written only by the {side}")
    sizes: dict[str, str] = {}
    for sink in sorted(sinks_a.keys() & sinks_b.keys()):
        diffs, sizes[sink] = compare_sink(a / sink, b / sink)
        differences += [f"sink `{sink}`: {d}" for d in diffs]
    if not sinks_a and not differences:
        differences.append(
            "the original script wrote no sink when run (no write call reached: check "
            "the command line given with --args)"
        )
    return VerifyResult(
        item.name,
        not differences,
        sorted(sinks_a.keys() | sinks_b.keys()),
        differences,
        sizes,
        redirected,
    )


def find_sinks(root: Path) -> set[str]:
    """Folders (relative to `root`) holding a `_SUCCESS` marker, symlinks not followed (kept
    for callers that look at a finished output folder; verify records its sinks)."""
    sinks: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = [d for d in dirnames if not (Path(dirpath) / d).is_symlink()]
        if "_SUCCESS" in filenames:
            sinks.add(str(Path(dirpath).relative_to(root)))
    return sinks


def _data_files(sink: Path) -> list[Path]:
    if sink.is_file():
        return [sink]  # a single file (pandas' to_csv)
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
    if not a.exists() or not b.exists():
        return [f"missing on the {'original' if not a.exists() else 'generated'} side"], ""
    files_a, files_b = _data_files(a), _data_files(b)
    fmt_a, fmt_b = _format(files_a), _format(files_b)
    if fmt_a != fmt_b and files_a and files_b:
        return [f"format {fmt_a} vs {fmt_b}"], ""
    base_a, base_b = (a.parent, b.parent) if a.is_file() else (a, b)
    parts_a = {str(p.parent.relative_to(base_a)) for p in files_a}
    parts_b = {str(p.parent.relative_to(base_b)) for p in files_b}
    if parts_a != parts_b:
        return [f"partition folders differ: {sorted(parts_a ^ parts_b)[:5]}"], ""
    # A CSV header repeats in every part file: strip it when all files on both sides agree.
    firsts = {(p.read_text(errors="replace").splitlines() or [""])[0] for p in files_a + files_b}
    strip = fmt_a == "csv" and len(firsts) == 1 and len(files_a) + len(files_b) > 2

    def rows(root: Path, files: list[Path], mask: bool) -> tuple[list[str], Counter[str]]:
        if fmt_a in ("parquet", "orc"):
            return _arrow_rows(root, fmt_a, files, mask)
        return _line_rows(root if root.is_dir() else root.parent, files, strip, mask)

    schema_a, rows_a = rows(a, files_a, False)
    schema_b, rows_b = rows(b, files_b, False)
    unit = "rows" if fmt_a in ("parquet", "orc") else "lines"
    if rows_a != rows_b and schema_a == schema_b:
        # `current_timestamp()`, `datetime.now()`: each run writes its own time; compared
        # without the values that are the time of the run, the rows may be the same
        masked_a, masked_b = rows(a, files_a, True)[1], rows(b, files_b, True)[1]
        if masked_a == masked_b and masked_a != rows_a and masked_b != rows_b:
            note = "timestamps of the run itself (e.g. current_timestamp()) not compared"
            return [], f"{sum(rows_a.values())} {unit}; {note}"
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
    return diffs, f"{sum(rows_a.values())} {unit}"


RUN_TIME = "<the time of the run>"
_RUN_WINDOW = datetime.timedelta(days=1)
_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?"
)


def _is_run_time(value: object) -> bool:
    """A timestamp within a day of now: written by the run itself, not read from its data."""
    if isinstance(value, str):
        try:
            value = datetime.datetime.fromisoformat(value)
        except ValueError:
            return False
    if not isinstance(value, datetime.datetime):
        return False
    now = datetime.datetime.now(value.tzinfo)
    return abs(now - value) < _RUN_WINDOW


def _arrow_rows(
    root: Path, fmt: str, files: list[Path], mask: bool = False
) -> tuple[list[str], Counter[str]]:
    import pyarrow.dataset as ds

    if not files:
        return [], collections.Counter()
    dataset = ds.dataset(
        [str(f) for f in files], format=fmt, partitioning="hive", partition_base_dir=str(root)
    )
    table = dataset.to_table()
    schema = [f"{f.name}:{f.type}" for f in table.schema]
    records = table.to_pylist()
    if mask:
        records = [{k: RUN_TIME if _is_run_time(v) else v for k, v in r.items()} for r in records]
    rows = collections.Counter(repr(tuple(sorted(r.items()))) for r in records)
    return schema, rows


def _line_rows(
    root: Path, files: list[Path], strip_header: bool, mask: bool = False
) -> tuple[list[str], Counter[str]]:
    contents = [(f, f.read_text(encoding="utf-8").splitlines()) for f in files]
    header = sorted({lines[0] for _, lines in contents if lines}) if strip_header else []
    rows: Counter[str] = collections.Counter()
    for f, lines in contents:
        prefix = str(f.parent.relative_to(root))
        body = lines[1:] if header and lines else lines
        if mask:
            body = [
                _TIMESTAMP.sub(lambda m: RUN_TIME if _is_run_time(m.group()) else m.group(), ln)
                for ln in body
            ]
        rows.update(f"{prefix}|{line}" for line in body)
    return header, rows
