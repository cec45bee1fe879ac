"""`pysetl-dagster schema infer`: a pandera schema from stored output that the same data passes."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import dagster as dg
import pandera.pyspark as pa
import pytest
from pyspark.sql import SparkSession

import definitions
from pysetl_dagster import Validation
from pysetl_dagster.checks.infer import schema_from_yaml
from pysetl_dagster.checks.plan import build_check_plan, evaluate, observed_exprs
from pysetl_dagster.cli.main import main


@pytest.fixture(scope="module")
def stored_example(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pysetl_dagster import PySparkSessionResource, SparkParquetIOManager

    storage = tmp_path_factory.mktemp("infer") / "storage"
    resources = {
        "pyspark": PySparkSessionResource(stop_at_exit=False),
        "io_manager": SparkParquetIOManager(base_path=str(storage)),
    }
    selection = ["clean_orders", "clean_customers", "clean_products", "enriched_orders",
                 "customer_lifetime_value"]  # fmt: skip
    assert dg.materialize(definitions.retail.assets, resources=resources, selection=selection)
    return storage


def _all_pass(schema: Any, df: Any) -> None:
    plan = build_check_plan(Validation(schema), dg.AssetKey("x"), "Inferred")
    exprs, broken = observed_exprs(plan, df)
    row = df.agg(*exprs).first()
    failed = [o for o in evaluate(plan, df, row.asDict(), broken=broken) if not o.passed]
    assert not failed, [(o.check.name, o.message) for o in failed]
    assert not schema.validate(df, lazy=True).pandera.errors  # pandera agrees


@pytest.mark.parametrize("asset", ["enriched_orders", "customer_lifetime_value"])
def test_inferred_python_model_round_trips(
    spark: SparkSession, stored_example: Path, tmp_path: Path, asset: str
) -> None:
    out = tmp_path / f"{asset}_schema.py"
    assert (
        main(["schema", "infer", asset, "--storage", str(stored_example), "--out", str(out)]) == 0
    )
    spec = importlib.util.spec_from_file_location("inferred", out)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (model,) = [v for v in vars(module).values() if isinstance(v, type) and issubclass(
        v, pa.DataFrameModel) and v is not pa.DataFrameModel]  # fmt: skip
    schema = model.to_schema()
    df = spark.read.parquet(str(next((stored_example / asset).glob("2*"))))
    assert list(schema.columns) == df.columns
    _all_pass(schema, df)
    text = out.read_text()
    assert "isin=['cancelled', 'completed', 'returned']" in text or asset != "enriched_orders"
    assert "in_range" in text


def test_inferred_yaml_round_trips(
    spark: SparkSession, stored_example: Path, tmp_path: Path
) -> None:
    out = tmp_path / "orders.yaml"
    args = ["schema", "infer", "clean_orders", "--storage", str(stored_example), "--format",
            "yaml", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    schema = schema_from_yaml(out.read_text())
    assert schema.columns["order_date"].checks[0].name == "in_range"
    df = spark.read.parquet(str(next((stored_example / "clean_orders").glob("2*"))))
    _all_pass(schema, df)


def test_infer_names_a_missing_asset(
    stored_example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["schema", "infer", "nope", "--storage", str(stored_example)]) == 1
    assert "Asset 'nope' has no stored Spark output" in capsys.readouterr().err


def test_infer_on_spark_connect_starts_no_jvm(
    stored_example: Path, tmp_path: Path, connect_server: Any
) -> None:
    """With `$PYSETL_SPARK_REMOTE` set (as `scripts/dev` sets it), the command profiles the
    stored output on that Connect server: the same YAML as on a classic session, and no JVM
    of its own (starting one would end the process)."""
    import os
    import subprocess
    import sys

    out = tmp_path / "orders.yaml"
    classic = tmp_path / "classic.yaml"
    args = ["schema", "infer", "clean_orders", "--storage", str(stored_example), "--format",
            "yaml"]  # fmt: skip
    assert main([*args, "--out", str(classic)]) == 0
    probe = (
        "import sys, pyspark.core.context as c\n"
        "def no_jvm(*a, **k): raise SystemExit('a JVM was started')\n"
        "c.launch_gateway = no_jvm\n"
        "from pysetl_dagster.cli.main import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    env = {**os.environ, "PYSETL_SPARK_REMOTE": connect_server.url}
    done = subprocess.run(
        [sys.executable, "-c", probe, *args, "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"Spark Connect session on {connect_server.url}" in done.stderr
    assert out.read_text() == classic.read_text()
