"""One side of `--verify` in its own process: run originals or generated pipelines in turn.

    python -m pysetl_dagster.migrate.verify_worker SPEC.json   -> SPEC.result.json

One SparkSession (local[1], one shuffle partition, no UI) serves every item; `stop()` is made a
no-op so a script that stops its session does not end it for the next one.

Writes a run makes outside its sandbox (an absolute `/mnt/warehouse/daily`, an `s3a://` URI,
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
import importlib
import json
import os
import re
import shutil
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrameReader, DataFrameWriter, SparkSession

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


def _session(warehouse: str) -> SparkSession:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = (
        SparkSession.builder.master("local[1]")
        .appName("pysetl-migrate-verify")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.warehouse.dir", warehouse)
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    SparkSession.stop = lambda self: None  # type: ignore[method-assign]
    return spark


def _enter(spark: SparkSession, folder: str) -> None:
    """Relative paths resolve in `folder`, for Python (cwd) and for Spark: the JVM's cwd is
    fixed at launch, but Hadoop's local file system has its own working directory."""
    os.chdir(folder)
    jvm = spark._jvm
    assert jvm is not None
    hadoop_fs = jvm.org.apache.hadoop.fs
    local = hadoop_fs.FileSystem.getLocal(spark._jsc.hadoopConfiguration())
    local.setWorkingDirectory(hadoop_fs.Path(Path(folder).resolve().as_uri()))


def _display(*values: Any, **_: Any) -> None:
    for value in values:
        show = getattr(value, "show", None)
        if callable(show):
            show()
        else:
            print(value)


def _run_original(item: dict[str, Any]) -> None:
    sys.argv = [Path(item["script"]).name, *item["argv"]]
    code = compile(item["code"], item["script"], "exec")
    scope: dict[str, Any] = {"__name__": "__main__", "__file__": item["script"]}
    if item["script"].endswith(".ipynb"):
        scope["display"] = _display  # what a Jupyter kernel provides
    try:
        exec(code, scope)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise


def _run_generated(item: dict[str, Any]) -> None:
    os.environ[item["env_var"]] = " ".join(item["argv"])
    os.environ["PYSETL_DAGSTER_STORAGE"] = item["storage"]
    if item["package_dir"] not in sys.path:
        sys.path.insert(0, item["package_dir"])
    module = importlib.import_module(f"{item['name']}.definitions")
    job = module.defs.resolve_job_def(f"{item['name']}_assets")
    result = job.execute_in_process(raise_on_error=True)
    if not result.success:
        raise RuntimeError(f"run of {item['name']}_assets failed")


def _collect_tables(spark: SparkSession, sandbox: Path) -> None:
    """Copy the tables a run saved into its sandbox (`_tables/<name>`, compared like any other
    sink), then forget them and its temp views so the next script starts clean."""
    for table in spark.catalog.listTables():
        if table.isTemporary:
            spark.catalog.dropTempView(table.name)
            continue
        rows = spark.sql(f"DESCRIBE TABLE EXTENDED `{table.name}`").collect()
        location = next((r.data_type for r in rows if r.col_name == "Location"), None)
        if location:
            source = Path(location.removeprefix("file:"))
            if source.exists():
                shutil.copytree(source, sandbox / "_tables" / table.name, dirs_exist_ok=True)
        spark.sql(f"DROP TABLE IF EXISTS `{table.name}`")


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    spark = _session(spec["warehouse"])
    outside = OutsideWrites(Path(spec["warehouse"]))
    outside.install()
    results: dict[str, dict[str, Any]] = {}
    home = os.getcwd()
    for item in spec["items"]:
        outside.enter(item)
        try:
            _enter(spark, item["sandbox"])
            (_run_original if spec["side"] == "original" else _run_generated)(item)
            results[item["name"]] = {"ok": True, "error": "", "redirected": outside.redirected}
        except BaseException as exc:  # report every failure, keep going with the next item
            tb = traceback.format_exception(exc)
            results[item["name"]] = {"ok": False, "error": "".join(tb[-3:]).strip()[-1500:]}
        finally:
            os.chdir(home)
            _collect_tables(spark, Path(item["sandbox"]))
    Path(spec_path).with_suffix(".result.json").write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
