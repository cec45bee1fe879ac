"""One side of `--verify` in its own process: run originals or generated pipelines in turn.

    python -m pysetl_dagster.migrate.verify_worker SPEC.json   -> SPEC.result.json

One SparkSession (local[1], one shuffle partition, no UI) serves every item; `stop()` is made a
no-op so a script that stops its session does not end it for the next one.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sys
import traceback
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession


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
    results: dict[str, dict[str, Any]] = {}
    home = os.getcwd()
    for item in spec["items"]:
        try:
            _enter(spark, item["sandbox"])
            (_run_original if spec["side"] == "original" else _run_generated)(item)
            results[item["name"]] = {"ok": True, "error": ""}
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
