"""What a migrated script hard-codes or takes as arguments is each Factory's Dagster Config.

Real runs: the generated package is imported and its asset job executed with a run config (what
the Launchpad sends), on the test session's SparkSession; `--verify` runs with the user's own
inputs folder and command line.
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import io
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pyspark.sql import SparkSession

from pysetl_dagster.cli import main
from pysetl_dagster.migrate.analysis import analyze
from pysetl_dagster.migrate.codegen import generate
from pysetl_dagster.migrate.params import plan_config
from pysetl_dagster.migrate.runtime import ScriptArgumentError

CORPUS = Path(__file__).parent / "migrate_corpus"


def _migrate(source: Path, out: Path, *extra: str) -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["migrate", str(source), "--out", str(out), *extra])
    assert code == 0, buffer.getvalue()
    return buffer.getvalue()


@contextlib.contextmanager
def _imported(out: Path, module: str) -> Iterator[ModuleType]:
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module(module)
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m.split(".")[0] == module.split(".")[0]]:
            del sys.modules[name]


def _copy(name: str, as_name: str, folder: Path) -> Path:
    """A corpus script under another name: packages of one session must not share a name."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{as_name}.py"
    shutil.copy(CORPUS / f"{name}.py", target)
    return target


def _migrated(name: str, as_name: str, tmp_path: Path) -> tuple[Path, str]:
    """Migrate a corpus script (as `as_name`) into `tmp_path/out`: (out, pipeline.py text)."""
    out = tmp_path / "out"
    _migrate(_copy(name, as_name, tmp_path / "src"), out)
    return out, (out / as_name / "pipeline.py").read_text()


def _run(
    out: Path, package: str, ops: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run the generated package's asset job with each op's Config (the Launchpad's run
    config), storing Factory outputs under `out/storage`."""
    monkeypatch.setenv("PYSETL_DAGSTER_STORAGE", str(out / "storage"))
    run_config = {"ops": {op: {"config": values} for op, values in ops.items()}}
    with _imported(out, f"{package}.definitions") as module:
        job = module.defs.resolve_job_def(f"{package}_assets")
        assert job.execute_in_process(run_config=run_config).success


def _text_rows(folder: Path, header: str = "") -> list[str]:
    """The lines Spark wrote as CSV/text part files (a header line left out)."""
    return [
        line
        for part in sorted(folder.glob("part-*"))
        for line in part.read_text().splitlines()
        if line and not (header and line.startswith(header))
    ]


def test_hard_coded_paths_are_config_with_the_script_values_as_defaults(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, code = _migrated("linear_orders", "cfg_linear", tmp_path)
    assert 'orders_path: str = "data/orders.csv"' in code
    assert 'output_path: str = "out/linear_orders/daily"' in code
    assert "spark.read.csv(self.config.orders_path, header=True, inferSchema=True)" in code
    report = (out / "reports" / "cfg_linear.md").read_text()
    assert "| ReadOrders | `orders_path` | `'data/orders.csv'` | hard-coded path, line 7 |" in (
        report
    )

    # The package loads as a code location through Dagster's own CLI (as `dagster dev` would).
    dagster = str(Path(sys.executable).parent / "dagster")
    validated = subprocess.run(
        [dagster, "definitions", "validate", "-m", "cfg_linear.definitions"],
        cwd=out,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "All code locations passed validation" in validated.stdout + validated.stderr

    # A run config (the Launchpad's) points the pipeline at other data and another output.
    orders = tmp_path / "orders.csv"
    orders.write_text(
        "order_id,customer_id,order_date,status,quantity\n"
        "1,7,2024-05-01,completed,3\n2,8,2024-05-01,completed,4\n3,9,2024-05-02,cancelled,1\n"
    )
    written = tmp_path / "daily"
    ops = {
        "read_orders": {"orders_path": str(orders)},
        "write_daily": {"output_path": str(written)},
    }
    _run(out, "cfg_linear", ops, monkeypatch)
    rows = spark.read.parquet(str(written)).collect()
    assert [(str(r.order_date), r["items"], r.customers) for r in rows] == [("2024-05-01", 7, 2)]


def test_argparse_arguments_are_typed_config_and_the_script_parses_them(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, code = _migrated("argparse_paths", "cfg_argparse", tmp_path)
    assert "limit: int = 2" in code and 'orders: str = "data/orders.csv"' in code
    assert "args = parse_args()" in code  # the script's own parsing, run on the Config

    with _imported(out, "cfg_argparse.pipeline") as pipeline:
        config = pipeline.factory_config(["--limit", "1", "--orders", "x.csv"])
        assert config[pipeline.Top] == {"limit": 1}
        assert config[pipeline.ReadOrders] == {"orders": "x.csv"}
        assert pipeline.factory_config([]) == {}
        assert pipeline.COMMAND_LINE.argv(pipeline.Top.Config(limit=5)) == [
            "--orders",
            "data/orders.csv",
            "--products",
            "data/products.csv",
            "--output",
            "out/argparse_paths/top_products",
            "--limit",
            "5",
        ]
        with pytest.raises(ScriptArgumentError, match=r"cfg_argparse\.py.*--limit"):
            pipeline.factory_config(["--limit", "many"])
        with pytest.raises(ScriptArgumentError, match=r"cfg_argparse\.py"):
            pipeline.script_values(["--limit", "many"])  # argparse's own exit, named

    written = tmp_path / "top"
    data = CORPUS / "data"
    ops: dict[str, dict[str, Any]] = {
        "read_orders": {"orders": str(data / "orders.csv")},
        "read_products": {"products": str(data / "products.csv")},
        "top": {"limit": 1},
        "write_top": {"output": str(written)},
    }
    _run(out, "cfg_argparse", ops, monkeypatch)
    # --limit 1 reached the script's `.limit(args.limit)`
    assert len(_text_rows(written, header="product_id")) == 1


def test_verify_uses_the_users_inputs_and_command_line(tmp_path: Path) -> None:
    source = _copy("argparse_paths", "cfg_verify", tmp_path / "src")
    inputs = tmp_path / "sample"
    shutil.copytree(CORPUS / "data", inputs / "data")
    orders = inputs / "data" / "orders.csv"
    header, *rows = orders.read_text().splitlines()
    orders.write_text("\n".join([header, *rows[: max(3, len(rows) // 2)]]) + "\n")
    out = tmp_path / "out"
    printed = _migrate(source, out, "--verify", "--inputs", str(inputs), "--args", "--limit 1")
    report = (out / "reports" / "cfg_verify.md").read_text()
    assert "**Equal**" in report, printed + report
    # Both sides ran on the sample with --limit 1: the CSV holds its header and one product.
    assert "`out/argparse_paths/top_products` (2 lines)" in report, report


def test_a_command_line_it_cannot_describe_stays_a_command_line(tmp_path: Path) -> None:
    script = tmp_path / "many_inputs.py"
    script.write_text(
        "import argparse\n"
        "from pyspark.sql import SparkSession\n\n"
        "parser = argparse.ArgumentParser()\n"
        'parser.add_argument("--inputs", nargs="+", default=["data/orders.csv"])\n'
        "args = parser.parse_args()\n"
        "spark = SparkSession.builder.getOrCreate()\n"
        "orders = spark.read.csv(args.inputs, header=True)\n"
        'orders.write.mode("overwrite").parquet("out/many")\n'
    )
    analysis = analyze(script)
    plan = plan_config(analysis)
    assert "nargs" in plan.fallback and not plan.uses_command_line
    code = generate(analysis)["pipeline.py"]
    assert "with script_argv(ARGS_ENV" in code  # the script reads $PYSETL_MIGRATE_ARGS_...
    assert "output_path" in code  # hard-coded paths still become Config


def test_required_arguments_are_required_fields(tmp_path: Path) -> None:
    script = tmp_path / "positional.py"
    script.write_text(
        "import argparse\n"
        "from pyspark.sql import SparkSession\n\n"
        "parser = argparse.ArgumentParser()\n"
        'parser.add_argument("source")\n'
        'parser.add_argument("--verbose", action="store_true")\n'
        "args = parser.parse_args()\n"
        "spark = SparkSession.builder.getOrCreate()\n"
        "orders = spark.read.csv(args.source, header=True)\n"
        'orders.write.mode("overwrite").parquet("out/positional")\n'
    )
    analysis = analyze(script)
    code = generate(analysis)["pipeline.py"]
    assert "        source: str\n" in code
    namespace: dict[str, Any] = {}
    exec(compile(code, "pipeline.py", "exec"), namespace)  # imports only: no Spark starts
    # code run without a module of its own registers nothing to pickle by value (`__name__`
    # is "builtins" there: registering it broke every later pickle of the test process)
    from pyspark import cloudpickle

    assert "builtins" not in cloudpickle.list_registry_pickle_by_value()
    command_line = namespace["COMMAND_LINE"]
    assert command_line.fields(["in.csv", "--verbose"]) == {"source": "in.csv", "verbose": True}
    read = namespace["ReadOrders"]
    assert command_line.argv(read.Config(source="a.csv")) == ["a.csv"]
    with pytest.raises(ScriptArgumentError):
        command_line.fields([])


def test_an_entry_point_that_returns_early_is_reported(tmp_path: Path) -> None:
    script = tmp_path / "early.py"
    script.write_text(
        "import sys\n"
        "from pyspark.sql import SparkSession\n\n\n"
        "def main(argv):\n"
        "    spark = SparkSession.builder.getOrCreate()\n"
        "    if not argv:\n"
        "        return 1\n"
        '    spark.read.csv(argv[0]).write.parquet("out/early")\n'
        "    return 0\n\n\n"
        'if __name__ == "__main__":\n'
        "    sys.exit(main(sys.argv[1:]))\n"
    )
    analysis = analyze(script)
    assert [(p.line, p.reason) for p in analysis.problems] == [(7, "main() returns early")]


def test_a_config_file_the_script_opens_is_read_at_run_time_from_config(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, code = _migrated("fixed_config_file", "cfg_file", tmp_path)
    assert 'job_file: str = "config/job.json"' in code
    # Nothing is opened at import: the package loads from any folder.
    monkeypatch.chdir(tmp_path)
    settings = tmp_path / "strict.json"
    settings.write_text(
        json.dumps({"inputs": {"orders": str(CORPUS / "data" / "orders.csv")}, "min_quantity": 3})
    )
    written = tmp_path / "large"
    ops = {
        "read_orders": {"job_file": str(settings)},
        "large": {"job_file": str(settings)},
        "write_large": {"output_path": str(written)},
    }
    _run(out, "cfg_file", ops, monkeypatch)
    quantities = [int(line.split(",")[1]) for line in _text_rows(written)]
    expected = [
        int(row["quantity"])
        for row in csv.DictReader((CORPUS / "data" / "orders.csv").open())
        if int(row["quantity"]) >= 6
    ]
    assert sorted(quantities) == sorted(expected) and quantities  # THRESHOLD = 3 * 2


_ABSOLUTE_PATHS = '''"""Nightly job with the warehouse's absolute locations."""
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

spark = SparkSession.builder.appName("nightly").getOrCreate()
orders = spark.read.csv("{landing}/orders.csv", header=True, inferSchema=True)
daily = orders.groupBy("day").agg(F.sum("amount").alias("total"))
daily.write.mode("overwrite").parquet("{warehouse}/daily")
reloaded = spark.read.parquet("{warehouse}/daily")
big = reloaded.filter(F.col("total") > 5)
big.write.mode("overwrite").json("s3a://legacy-bucket/exports/big_days")
daily.write.mode("overwrite").option("header", True).csv("data/exports/daily")
'''


def test_verify_keeps_writes_outside_its_folder_in_the_sandbox(tmp_path: Path) -> None:
    """Absolute paths and URIs the script writes are never written for real by `--verify`:
    both sides write them into their sandboxes, where they are compared."""
    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse"
    landing.mkdir()
    (landing / "orders.csv").write_text("day,amount\nmon,4\nmon,3\ntue,2\nwed,9\n")
    src = tmp_path / "src"
    (src / "data").mkdir(parents=True)  # the inputs folder holds `data`: a write goes into it
    (src / "data" / "README").write_text("lookup files\n")
    script = src / "cfg_absolute.py"
    script.write_text(_ABSOLUTE_PATHS.format(landing=landing, warehouse=warehouse))
    out = tmp_path / "out"
    printed = _migrate(script, out, "--verify")
    report = (out / "reports" / "cfg_absolute.md").read_text()
    assert "**Equal**" in report, printed + report
    daily = f"_outside/{str(warehouse).lstrip('/')}/daily"
    # the script's read-back of its own output read the sandbox copy: 2 of 3 days are > 5
    assert f"`{daily}` (3 rows)" in report, report
    assert "`_outside/s3a/legacy-bucket/exports/big_days` (2 lines)" in report, report
    assert f"- `{warehouse}/daily` as `{daily}`" in report, report
    assert "`data/exports/daily` (4 lines)" in report, report
    assert not warehouse.exists()
    assert sorted(p.name for p in (src / "data").iterdir()) == ["README"]
