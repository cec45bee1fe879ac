"""What `--verify` installs in both processes it runs: sink records and sandboxed writes.

Both sides run as a user runs them (`python script.py ARGS`; `dagster asset materialize` of the
generated definitions), each in a fresh process whose `sitecustomize` calls `install()` when
`$PYSETL_VERIFY_SINKS` names a record file. Nothing about the session changes: the script's
builder, its config and its `stop()` are its own. Two things are added:

* every write call (the DataFrame writer's path and table methods, `saveAsTextFile`, and
  pandas' `to_csv`/`to_parquet`/`to_json`) appends one JSON line to the record file: the
  sinks to compare are found from the writes themselves, not from `_SUCCESS` markers (Spark
  writes none under dynamic partition overwrite);
* writes a run makes outside its sandbox (an absolute `/mnt/warehouse/daily`, an `s3a://` URI,
a relative path climbing out with `..`; the pipeline's storage and the warehouse excepted)
would land in the user's real locations, and both sides would share them: the DataFrame
writer's paths are mapped into the sandbox instead
(`_outside/mnt/warehouse/daily`, `_outside/s3a/bucket/key`), the same way on both
sides, so such sinks are compared too and nothing outside is touched. A read of a path a run
wrote that way reads the sandbox copy; any other read (the script's real inputs) is unchanged.
A write into a linked inputs folder (`data/out`) first turns the links on its way into real
sandbox folders, so it never reaches the user's folder either.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrameReader, DataFrameWriter

from .terminals import READ_TERMINALS, TABLE_TERMINALS, WRITE_TERMINALS

OUTSIDE = "_outside"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(.*)$")
_WRITES = sorted(WRITE_TERMINALS - TABLE_TERMINALS)  # the writer's methods that take a path
_READS = sorted(READ_TERMINALS - TABLE_TERMINALS)


class OutsideWrites:
    """Maps writer paths outside the current sandbox into it (see the module docstring)."""

    def __init__(self, warehouse: Path) -> None:
        self.warehouse = warehouse.resolve()
        self.sandbox = self.storage = Path.cwd()
        self.redirected: dict[str, str] = {}

    def enter(self, item: dict[str, Any]) -> None:
        """The item's sandbox and pipeline storage: the two places its run may write."""
        self.sandbox = Path(item["sandbox"]).resolve()
        self.storage = Path(item["storage"]).resolve()
        self.redirected = {}

    @staticmethod
    def _local(path: str) -> Path | None:
        """The absolute local path `path` names (`file:` URIs too); None for other URIs."""
        match = _SCHEME.match(path)
        if match and match.group(1).lower() != "file" and len(match.group(1)) > 1:
            return None
        local = match.group(2) if match and match.group(1).lower() == "file" else path
        return Path(os.path.normpath(Path.cwd() / local))

    def target(self, path: str) -> str | None:
        """The sandbox path a write to `path` goes to, or None when it stays inside."""
        full = self._local(path)
        if full is None:
            scheme, rest = path.split(":", 1)
            return str(self.sandbox / OUTSIDE / scheme.lower() / rest.lstrip("/"))
        if any(full.is_relative_to(p) for p in (self.sandbox, self.storage, self.warehouse)):
            return None
        return str(self.sandbox / OUTSIDE / str(full).lstrip("/"))

    def write_path(self, path: Any) -> Any:
        if not isinstance(path, str):
            return path
        target = self.target(path)
        if target is None:
            self._unshare(self._local(path) or Path(path))
            return path
        self.redirected[path] = os.path.relpath(target, self.sandbox)
        return target

    def _unshare(self, target: Path) -> None:
        """A write into a sandbox folder that links to an inputs folder (`data/out` with `data`
        the user's) would land in the user's folder, shared by both sides: each linked folder
        on the way becomes a real sandbox folder of links to its entries."""
        if not target.is_relative_to(self.sandbox):
            return
        current = self.sandbox
        for part in target.relative_to(self.sandbox).parts:
            current = current / part
            if not current.is_symlink():
                if not current.exists():
                    return
                continue
            real = current.resolve()
            current.unlink()
            if real.is_dir():
                current.mkdir()
                for entry in real.iterdir():
                    (current / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())

    def read_path(self, path: Any) -> Any:
        if isinstance(path, list | tuple):
            return type(path)(self.read_path(p) for p in path)
        if not isinstance(path, str):
            return path
        target = self.target(path)
        return target if target is not None and Path(target).exists() else path

    def install(self) -> None:
        for name in _WRITES:
            method = getattr(DataFrameWriter, name)
            setattr(DataFrameWriter, name, self._wrap(method, self.write_path, every=False))
        for name in _READS:
            method = getattr(DataFrameReader, name)
            # `parquet(*paths)` takes every positional argument as a path
            setattr(DataFrameReader, name, self._wrap(method, self.read_path, name == "parquet"))

    @staticmethod
    def _wrap(
        method: Callable[..., Any], mapping: Callable[[Any], Any], every: bool
    ) -> Callable[..., Any]:
        @functools.wraps(method)
        def mapped(self: Any, *args: Any, **kwargs: Any) -> Any:
            if "path" in kwargs:
                kwargs["path"] = mapping(kwargs["path"])
            elif args:
                args = tuple(mapping(a) for a in args) if every else (mapping(args[0]), *args[1:])
            return method(self, *args, **kwargs)

        return mapped


class SinkRecorder:
    """Appends one JSON line per write call to the record file (see the module docstring)."""

    def __init__(self, record: Path, outside: OutsideWrites) -> None:
        self.record = record
        self.outside = outside

    def add(self, kind: str, target: str, method: str, written_as: str = "") -> None:
        if kind == "path":
            local = OutsideWrites._local(target)
            if local is None:
                return
            if local.is_relative_to(self.outside.storage):
                return  # the pipeline's own storage (the IO manager), not a sink of the script
            target = str(local)
        with self.record.open("a", encoding="utf-8") as out:
            entry = {"kind": kind, "target": target, "method": method, "asked": written_as}
            out.write(json.dumps(entry) + "\n")

    def install(self) -> None:
        for name in sorted(WRITE_TERMINALS):
            method = getattr(DataFrameWriter, name)
            kind = "table" if name in TABLE_TERMINALS else "path"
            setattr(DataFrameWriter, name, self._recorded(method, kind, name))
        from pyspark import RDD

        RDD.saveAsTextFile = self._recorded(RDD.saveAsTextFile, "path", "saveAsTextFile")  # type: ignore[method-assign]
        self._record_opens()
        try:
            import pandas as pd
        except ImportError:
            return
        for name in ("to_csv", "to_parquet", "to_json"):
            method = getattr(pd.DataFrame, name)
            setattr(pd.DataFrame, name, self._recorded(method, "path", f"pandas.{name}", True))

    def _record_opens(self) -> None:
        """Files the script writes with Python's own `open(path, "w")`, inside its sandbox
        (relative paths): a results file is a sink too. Writes elsewhere (Dagster's storage,
        temporary files) are not the script's output."""
        import builtins

        recorder, original = self, builtins.open

        @functools.wraps(original)
        def recording_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            sink = None
            if isinstance(file, str | os.PathLike) and any(c in str(mode) for c in "wax"):
                target = Path(os.path.abspath(file))
                sandbox = recorder.outside.sandbox
                if target.is_relative_to(sandbox) and not any(
                    part.startswith(".") or part in ("spark-warehouse", "metastore_db")
                    for part in target.relative_to(sandbox).parts
                ):
                    recorder.outside._unshare(target)  # never into the user's inputs folder
                    sink = target
            handle = original(file, mode, *args, **kwargs)
            if sink is not None:
                recorder.add("path", str(sink), "open")
            return handle

        builtins.open = recording_open

    def _recorded(
        self, method: Callable[..., Any], kind: str, name: str, pandas: bool = False
    ) -> Callable[..., Any]:
        recorder = self

        @functools.wraps(method)
        def recorded(self: Any, *args: Any, **kwargs: Any) -> Any:
            key = "path_or_buf" if name == "pandas.to_csv" else "path"
            target = kwargs.get(key, kwargs.get("name", args[0] if args else None))
            result = method(self, *args, **kwargs)
            if isinstance(target, str | os.PathLike):
                mapped = recorder.outside.target(str(target)) if kind == "path" else None
                recorder.add(kind, mapped or str(target), name, str(target) if mapped else "")
            return result

        return recorded


def install() -> None:
    """Called by the sandbox's `sitecustomize`: record sinks, keep writes in the sandbox."""
    record = os.environ.get("PYSETL_VERIFY_SINKS")
    if not record:
        return
    outside = OutsideWrites(Path(os.environ.get("PYSETL_VERIFY_WAREHOUSE", "spark-warehouse")))
    outside.sandbox = Path.cwd().resolve()
    outside.storage = Path(os.environ.get("PYSETL_DAGSTER_STORAGE", outside.sandbox / ".x"))
    outside.storage = outside.storage.resolve()
    outside.install()
    SinkRecorder(Path(record), outside).install()
    import builtins

    if not hasattr(builtins, "display"):
        builtins.display = _display  # type: ignore[attr-defined]  # what Jupyter provides


def _display(*values: Any, **_: Any) -> None:
    for value in values:
        show = getattr(value, "show", None)
        if callable(show):
            show()
        else:
            print(value)


SITECUSTOMIZE = """# pysetl-dagster migrate --verify: records the sinks this process writes
try:
    from pysetl_dagster.migrate.verify_hooks import install
except Exception:  # not the migration's Python: nothing to record
    install = None
if install is not None:
    install()
"""
