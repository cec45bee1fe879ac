"""Migration on the shapes real scripts have: entry points, scopes, job modules, honest verify.

The verified fixture migrates a folder of corpus scripts with `--verify` through the real
command line: each original runs as `python script.py` in its own sandbox (its own builder, its
own `stop()`), each pipeline as `dagster asset materialize` of the generated definitions in a
fresh process, and every sink either side wrote is compared.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from pysetl_dagster.cli import main
from pysetl_dagster.migrate.checks import unbound_names
from pysetl_dagster.migrate.verify import compare_sink

CORPUS = Path(__file__).parent / "migrate_corpus"
VERIFIED = [
    "start_spark_helper",  # a helper builds the session; main() with config; sys.exit(main())
    "accumulator_loop",  # df_all = None at top level, rebound in a loop
    "configparser_top",  # config.read() then config[...] at top level
    "dynamic_overwrite",  # partitionOverwriteMode=dynamic: no _SUCCESS
    "hive_tables",  # enableHiveSupport + saveAsTable into a database of the local warehouse
    "pandas_csv_sink",  # toPandas().to_csv
    "udf_plain_function",  # a module-level function made a UDF in main(): workers need it
    "databricks_export",  # a Databricks `.py` export: the cluster's `spark`, a %sql cell
]
PROJECTS = {"driver_project": "main", "shipped_files_project": "run_job"}  # folder: entry


def _cli(*argv: str) -> tuple[int, str]:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["migrate", *argv])
    return code, buffer.getvalue()


def _link_folder(folder: Path, names: list[str]) -> Path:
    """A folder holding links to some corpus scripts and the corpus' inputs."""
    folder.mkdir(parents=True)
    for entry in ("data", "config"):
        (folder / entry).symlink_to(CORPUS / entry, target_is_directory=True)
    for name in names:
        source = next(CORPUS.glob(f"{name}.*"))
        (folder / source.name).symlink_to(source)
    return folder


@pytest.fixture(scope="module")
def verified(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str]:
    tmp = tmp_path_factory.mktemp("verified")
    source = _link_folder(tmp / "scripts", VERIFIED)
    for project in PROJECTS:
        (source / project).symlink_to(CORPUS / project, target_is_directory=True)
    out = tmp / "out"
    code, printed = _cli(str(source), "--out", str(out), "--verify", "--parallel", "4")
    return out, code, printed


@pytest.mark.parametrize("name", [*VERIFIED, *PROJECTS.values()])
def test_each_script_verifies_equal_as_a_user_runs_it(
    verified: tuple[Path, int, str], name: str
) -> None:
    out, _, printed = verified
    report = (out / "reports" / f"{name}.md").read_text()
    assert "**Equal**" in report, printed + report


def test_the_folder_verifies_and_exits_zero(verified: tuple[Path, int, str]) -> None:
    out, code, printed = verified
    summary = (out / "SUMMARY.md").read_text()
    assert code == 0, printed + summary
    # the driver's job modules are migrated with it, not reported as scripts; so are a
    # package's modules (its `__init__.py` too) that an entry point imports
    assert summary.count("not migrated on its own: a module main.py imports") == 3, summary
    assert summary.count("not migrated on its own: a module run_job.py imports") == 2, summary


def test_dynamic_overwrite_sink_is_found_without_success_marker(
    verified: tuple[Path, int, str],
) -> None:
    out, _, _ = verified
    report = (out / "reports" / "dynamic_overwrite.md").read_text()
    assert "`out/dynamic_overwrite/daily` (" in report, report


def test_tables_and_pandas_files_are_sinks(verified: tuple[Path, int, str]) -> None:
    out, _, _ = verified
    hive = (out / "reports" / "hive_tables.md").read_text()
    assert "`spark-warehouse/sales.db/orders`" in hive, hive
    assert "`spark-warehouse/sales.db/customer_totals`" in hive, hive
    assert "spark.sql.catalogImplementation" in (out / "hive_tables" / "pipeline.py").read_text()
    pandas = (out / "reports" / "pandas_csv_sink.md").read_text()
    assert "`out/pandas_csv_sink/per_status.csv` (" in pandas, pandas


def test_scope_problems_become_one_factory_with_the_reason(
    verified: tuple[Path, int, str],
) -> None:
    out, _, _ = verified
    loop = (out / "reports" / "accumulator_loop.md").read_text()
    assert "**one Factory**" in loop and "`df_all` unbound" in loop, loop
    config = (out / "reports" / "configparser_top.md").read_text()
    assert "reads `config` after line 7 changes it" in config, config


def test_importing_generated_packages_runs_nothing(
    verified: tuple[Path, int, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No session, no argv parsing, no file read at import (the entry points' bodies run in
    a Factory): a fresh interpreter imports every package from an empty folder."""
    out, _, _ = verified
    packages = sorted(p.name for p in out.iterdir() if (p / "definitions.py").exists())
    assert len(packages) == len(VERIFIED) + len(PROJECTS)
    code = (
        "import sys, importlib\n"
        f"sys.path.insert(0, {str(out)!r})\n"
        "sys.argv = ['dagster', '--job', 'x', '--nonsense']\n"
        f"for name in {packages!r}:\n"
        "    importlib.import_module(name + '.definitions')\n"
        "from pyspark.sql import SparkSession\n"
        "assert SparkSession.getActiveSession() is None\n"
        "import pyspark\n"
        "assert pyspark.SparkContext._active_spark_context is None\n"
        "print('imported', len(sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert list(tmp_path.iterdir()) == []


def test_session_builders_and_stop_become_the_resource(verified: tuple[Path, int, str]) -> None:
    out, _, _ = verified
    code = (out / "start_spark_helper" / "pipeline.py").read_text()
    assert "spark.stop()" not in code
    assert "def start_spark(" in code  # the helper is kept, verbatim, at module level
    report = (out / "reports" / "start_spark_helper.md").read_text()
    assert "| stop() |" in report and "the Spark resource stops the session" in report
    assert "| session builder |" in report


def test_driver_follows_the_job_the_command_line_selects(tmp_path: Path) -> None:
    """`main.py --job customer_countries`: the original and the pipeline run that job module;
    the command line is the Factory's Config default."""
    out = tmp_path / "out"
    code, printed = _cli(
        str(CORPUS / "driver_project" / "main.py"),
        "--out",
        str(out),
        "--verify",
        "--args",
        "--job customer_countries",
    )
    report = (out / "reports" / "main.md").read_text()
    assert code == 0, printed + report
    assert "`out/driver_project/countries` (" in report, report
    pipeline = (out / "main" / "pipeline.py").read_text()
    assert "argv: list[str] = ['--job', 'customer_countries']" in pipeline.replace('"', "'")
    assert "| dynamic import |" in report


def test_a_reported_file_makes_the_command_fail(tmp_path: Path) -> None:
    code, printed = _cli(str(CORPUS / "printed_collect.py"), "--out", str(tmp_path / "out"))
    assert code == 1, printed
    report = (tmp_path / "out" / "reports" / "printed_collect.md").read_text()
    assert "no sink" in report
    assert "| line 6 | print of data |" in report and "| line 6 | collect() |" in report
    assert not (tmp_path / "out" / "printed_collect").exists()


def test_a_show_only_notebook_is_reported_not_an_empty_package(tmp_path: Path) -> None:
    code, _ = _cli(str(CORPUS / "notebook_show_only.ipynb"), "--out", str(tmp_path / "out"))
    assert code == 1
    report = (tmp_path / "out" / "reports" / "notebook_show_only.md").read_text()
    assert "**Not migrated**" in report and "no sink" in report
    assert not (tmp_path / "out" / "notebook_show_only").exists()


def test_a_job_module_alone_is_reported_as_without_entry_point(tmp_path: Path) -> None:
    code, _ = _cli(str(CORPUS / "job_module_only.py"), "--out", str(tmp_path / "out"))
    assert code == 1
    report = (tmp_path / "out" / "reports" / "job_module_only.md").read_text()
    assert "no entry point" in report and "it only defines run" in report


def test_unbound_names_are_found_before_writing() -> None:
    code = (
        "import os\n"
        "X = 1\n"
        "def f():\n"
        "    inputs = inputs\n"
        "    return missing + X\n"
        "def g():\n"
        "    for name in os.listdir('.'):\n"
        "        total = total + 1\n"
        "def h():\n"
        "    global later\n"
        "    later = 1\n"
        "def k():\n"
        "    return later, os, [v for v in range(3)]\n"
    )
    found = [(u.line, u.name) for u in unbound_names(code)]
    assert found == [(4, "inputs"), (5, "missing"), (8, "total")]


def test_compare_names_the_sink_and_the_first_differing_rows(
    spark: SparkSession, tmp_path: Path
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    spark.createDataFrame([(1, "x"), (2, "y")], "id int, v string").write.parquet(str(a))
    spark.createDataFrame([(2, "y"), (1, "z")], "id int, v string").write.parquet(str(b))
    diffs, size = compare_sink(a, b)
    assert size == "2 rows"
    assert len(diffs) == 1 and "only in the original: [" in diffs[0] and "'x'" in diffs[0]
    same, _ = compare_sink(a, a)
    assert same == []
    c = tmp_path / "c"
    spark.createDataFrame([(1, 2)], "id int, v int").write.parquet(str(c))
    schema_diff, _ = compare_sink(a, c)
    assert any("schema" in d for d in schema_diff), schema_diff


def test_reports_count_every_construct(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _cli(str(CORPUS / "global_counter.py"), "--out", str(out))
    report = (out / "reports" / "global_counter.md").read_text()
    assert "| line 8 | global |" in report and "| line 13 | global |" in report
    summary = (out / "SUMMARY.md").read_text()
    assert "| global | 2 |" in summary, summary


def test_files_a_helper_ships_reach_the_pipeline(verified: tuple[Path, int, str]) -> None:
    """`spark.files` set by a helper module's builder (the session exists when the pipeline's
    Factory calls it): the file is added to the running session, SparkFiles finds it."""
    out, _, _ = verified
    report = (out / "reports" / "run_job.md").read_text()
    assert "**Equal**" in report and "`out/shipped_files_project/big_orders` (" in report, report


def test_a_databricks_export_runs_with_the_clusters_session(
    verified: tuple[Path, int, str],
) -> None:
    out, _, _ = verified
    report = (out / "reports" / "databricks_export.md").read_text()
    assert "**Equal**" in report, report
    assert "`%sql` is a Databricks magic cell" in report and "cell 4" in report, report
    assert "a Databricks notebook: `spark`" in report, report


def test_databricks_cells_map_to_their_lines() -> None:
    from pysetl_dagster.migrate.notebook import databricks_script

    text = (CORPUS / "databricks_export.py").read_text()
    code, where, notes = databricks_script(text)
    lines = code.splitlines()
    assert lines[:2] == [
        "from pyspark.sql import SparkSession",
        "spark = SparkSession.builder.getOrCreate()",
    ]
    orders = lines.index(
        'orders = spark.read.csv("data/orders.csv", header=True, inferSchema=True)'
    )
    assert where[orders + 1] == "cell 3, line 2"  # the prelude does not shift the report
    assert [n for n in notes if "%sql" in n] and not [n for n in notes if "%md" in n]
    # a notebook that builds its own session gets nothing added
    own = "# Databricks notebook source\nfrom pyspark.sql import SparkSession\n"
    own += "spark = SparkSession.builder.getOrCreate()\nspark.range(1).show()\n"
    assert databricks_script(own)[0] == own


def test_udfs_reach_workers_by_value_not_by_importing_the_package(tmp_path: Path) -> None:
    """A worker unpickles a generated module's function without importing the package, so a
    same-named script in the folder workers start in (the original, which would build a
    session on the worker) is never imported instead."""
    out = tmp_path / "out"
    code, printed = _cli(str(CORPUS / "udf_plain_function.py"), "--out", str(out))
    assert code == 0, printed
    pickled = tmp_path / "function.pickle"
    dump = (
        "import sys\n"
        f"sys.path.insert(0, {str(out)!r})\n"
        "from pyspark import cloudpickle\n"
        "from udf_plain_function import pipeline\n"
        f"open({str(pickled)!r}, 'wb').write(cloudpickle.dumps(pipeline.quantity_band))\n"
    )
    subprocess.run([sys.executable, "-c", dump], check=True, cwd=tmp_path, timeout=300)
    worker = tmp_path / "worker"
    worker.mkdir()
    (worker / "udf_plain_function.py").write_text("raise SystemExit('imported the script')\n")
    load = (
        "import pickle, sys\n"
        "sys.path.insert(0, '')\n"
        f"band = pickle.loads(open({str(pickled)!r}, 'rb').read())\n"
        "print(band(2), band(9), 'udf_plain_function' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", load], cwd=worker, capture_output=True, text=True, timeout=300
    )
    assert result.stdout.split() == ["few", "many", "False"], result.stderr[-2000:]


def test_the_scripts_own_method_names_are_kept(verified: tuple[Path, int, str]) -> None:
    """Formatting the generated code applies no lint fix that changes a call: the helper's
    logger has `warn()` and no `warning()`."""
    out, _, _ = verified
    code = (out / "run_job" / "pipeline.py").read_text()
    assert 'log.warn("job started")' in code and "log.warning(" not in code


def test_the_time_of_each_run_is_not_a_difference(spark: SparkSession, tmp_path: Path) -> None:
    """`current_timestamp()` columns (ingest_timestamp.py): each side writes the time it ran;
    the rest of every row is compared, and a real difference still is one."""
    from pyspark.sql import functions as F

    base = spark.createDataFrame([(1, "uk"), (2, "fr")], "id int, country string")
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    base.withColumn("loaded_at", F.current_timestamp()).write.parquet(str(a))
    base.withColumn(
        "loaded_at", F.current_timestamp() + F.expr("INTERVAL 3 SECONDS")
    ).write.parquet(str(b))
    diffs, size = compare_sink(a, b)
    assert diffs == [] and "timestamps of the run itself" in size, (diffs, size)
    other = spark.createDataFrame([(1, "uk"), (2, "de")], "id int, country string")
    other.withColumn("loaded_at", F.current_timestamp()).write.parquet(str(c))
    assert compare_sink(a, c)[0], "a changed country is a difference"
    # the same in text formats: CSV lines with the run's timestamp in them
    x, y = tmp_path / "x", tmp_path / "y"
    for folder, shift in ((x, 0), (y, 5)):
        stamped = base.withColumn("at", F.current_timestamp() + F.expr(f"INTERVAL {shift} SECONDS"))
        stamped.coalesce(1).write.option("header", True).csv(str(folder))
    diffs, size = compare_sink(x, y)
    assert diffs == [] and "not compared" in size, (diffs, size)
    old = tmp_path / "old"
    base.withColumn("at", F.lit("2020-01-01 10:00:00").cast("timestamp")).coalesce(1).write.option(
        "header", True
    ).csv(str(old))
    assert compare_sink(x, old)[0], "a timestamp from the data is compared"


def test_partition_dependent_values_keep_the_script_in_one_factory(tmp_path: Path) -> None:
    """monotonically_increasing_id() (and rand(), input_file_name(), ...) give other values
    once a Factory's output is stored and read back: no split, and the report says why."""
    out = tmp_path / "out"
    code, printed = _cli(str(CORPUS / "surrogate_keys.py"), "--out", str(out))
    assert code == 0, printed
    report = (out / "reports" / "surrogate_keys.md").read_text()
    assert "**one Factory**" in report and "depends on how the rows are partitioned" in report


def test_files_the_script_writes_with_open_are_sinks(tmp_path: Path) -> None:
    """python_file_output.py writes its answer with `open(..., "w")`: migrated (not "no
    sink"), and verify's hook records the file, never writing into the inputs folder."""
    out = tmp_path / "out"
    code, printed = _cli(str(CORPUS / "python_file_output.py"), "--out", str(out))
    assert code == 0, printed
    from pysetl_dagster.migrate.verify import _environment, recorded_sinks

    inputs = tmp_path / "inputs"
    (inputs / "data").mkdir(parents=True)
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    (sandbox / "data").symlink_to(inputs / "data", target_is_directory=True)
    env = _environment(tmp_path / "work")
    env["PYSETL_VERIFY_SINKS"] = str(tmp_path / "record.jsonl")
    script = (
        "open('data/summary.txt', 'w').write('done\\n')\n"
        "open('answer.txt', 'w').write('42\\n')\n"
        "open('answer.txt').read()\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=sandbox, env=env, check=True, timeout=300)
    sinks = recorded_sinks(tmp_path / "record.jsonl", sandbox)
    assert sinks == {"data/summary.txt": "open", "answer.txt": "open"}, sinks
    assert list((inputs / "data").iterdir()) == []  # the user's folder is untouched
    assert (sandbox / "data" / "summary.txt").read_text() == "done\n"
