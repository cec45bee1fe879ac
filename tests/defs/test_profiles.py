"""Profiles: inheritance, selection by environment, validation before Spark, and secrets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from pyspark.sql import DataFrame, SparkSession

from definitions import PROFILES_FILE
from pysetl_dagster import (
    PySetlProfileError,
    SparkParquetIOManager,
    build_definitions,
    load_profile,
)
from pysetl_dagster.defs.profiles import PROFILE_ENV, PROFILE_FILE_ENV
from tests.conftest import ROOT, assert_same_data


def _write(tmp_path: Path, text: str, name: str = "profiles.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_sections_inherit_from_base_and_from_each_other() -> None:
    dev = load_profile(PROFILES_FILE, "dev")
    staging = load_profile(PROFILES_FILE, "staging")
    prod = load_profile(PROFILES_FILE, "prod")
    assert dev.spark.master == "local[*]" and dev.validation == "schema_and_data"
    assert not dev.schedules.enabled
    assert staging.storage.keep_versions == 3 and staging.spark.master == "local[*]"
    # prod extends staging: its storage settings, its own master, base's merged key by key.
    assert prod.storage.keep_versions == 3
    assert prod.spark.master == "spark://spark-master:7077"
    assert prod.spark.config == {
        "spark.sql.shuffle.partitions": "8",
        "spark.ui.showConsoleProgress": "false",
    }
    assert prod.schedules.enabled and prod.schedules.cron == "0 2 * * *"
    assert prod.storage.root == "/opt/dagster/storage"


def test_environment_selects_profile_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = _write(
        tmp_path, "base: {validation: schema_only}\nlab: {spark: {master: 'local[1]'}}\n"
    )
    monkeypatch.setenv(PROFILE_ENV, "lab")
    monkeypatch.setenv(PROFILE_FILE_ENV, str(other))
    profile = load_profile(PROFILES_FILE)
    assert (profile.name, profile.file) == ("lab", str(other))
    assert profile.spark.master == "local[1]" and profile.validation == "schema_only"


def test_toml_profiles(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '[base.spark]\nmaster = "local[2]"\n[prod.schedules]\nenabled = true\n',
        "profiles.toml",
    )
    prod = load_profile(path, "prod")
    assert prod.spark.master == "local[2]" and prod.schedules.enabled


def test_build_definitions_takes_the_profile(tmp_path: Path) -> None:
    import definitions

    prod = load_profile(PROFILES_FILE, "prod")
    defs = build_definitions(definitions.retail, profile=prod, storage_path=str(tmp_path))
    resources = defs.resources or {}
    assert resources["pyspark"].master == "spark://spark-master:7077"
    assert resources["io_manager"].validation_depth == "schema_and_data"
    assert resources["io_manager"].keep_versions == 3  # from staging
    (schedule,) = defs.schedules or []
    assert isinstance(schedule, dg.ScheduleDefinition)
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    dev_defs = build_definitions(definitions.retail, profile=load_profile(PROFILES_FILE, "dev"))
    (dev_schedule,) = dev_defs.schedules or []
    assert isinstance(dev_schedule, dg.ScheduleDefinition)
    assert dev_schedule.default_status == dg.DefaultScheduleStatus.STOPPED


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("prod: {spark: {mastr: 'local'}}", "key 'spark.mastr': unknown key"),
        ("prod: {schedules: {enabled: maybe}}", "key 'schedules.enabled': Input should be"),
        ("prod: {spark: {master: }}", "key 'spark.master': missing value"),
        (
            "prod: {resources: {db: {config: {user: u}}}}",
            "key 'resources.db.class': missing value",
        ),
        (
            "prod: {validation: deep}",
            "key 'validation': Input should be 'schema_only', 'data_only'",
        ),
        (
            "prod: {resources: {db: {class: 'm:C', config: {password: hunter2}}}}",
            "key 'resources.db.config': Value error, 'password' is a secret",
        ),
        (
            "prod: {spark: {config: {spark.hadoop.fs.s3a.secret.key: abc}}}",
            "looks like a secret: move it to secret_config",
        ),
        ("prod: {extends: prod}", "key 'extends': inheritance cycle prod -> prod"),
        ("staging: {}", "profile 'prod' is not defined (sections: staging)"),
    ],
)
def test_invalid_profile_is_one_error_naming_file_profile_and_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(PySetlProfileError) as info:
        load_profile(path, "prod")
    message = str(info.value)
    assert message.startswith(f"{path}: profile 'prod'"), message
    assert expected in message, message
    assert "hunter2" not in message


def test_bad_profile_fails_at_code_load_before_spark(tmp_path: Path) -> None:
    path = _write(tmp_path, "prod: {spark: {master: 7}}\n")
    code = (
        "import pyspark\n"
        "try:\n"
        "    import definitions\n"
        "except Exception as e:\n"
        "    print(type(e).__name__, e)\n"
        "from pyspark import SparkContext\n"
        "print('jvm started:', SparkContext._jvm is not None)\n"
    )
    env = {**os.environ, PROFILE_ENV: "prod", PROFILE_FILE_ENV: str(path), "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120, check=True,
    ).stdout  # fmt: skip
    assert f"PySetlProfileError {path}: profile 'prod': key 'spark.master'" in out
    assert "jvm started: False" in out


SECRET = "s3cr3t-Value-9f2c1e"
DB_PASSWORD = "db-Pa55word-77ab10"


def test_secrets_reach_spark_and_resources_but_no_record(
    tmp_path: Path, native_outputs: dict[str, DataFrame]
) -> None:
    """Run the example with secrets from the environment, then search everything it left."""
    events_dir = tmp_path / "spark-events"
    events_dir.mkdir()
    profile = _write(
        tmp_path,
        PROFILES_FILE.read_text()
        + f"""
secret_test:
  spark:
    master: "local[2]"
    config:
      spark.eventLog.enabled: "true"
      spark.eventLog.dir: "file://{events_dir}"
      spark.eventLog.compress: "false"
    secret_config:
      spark.hadoop.fs.s3a.secret.key: {{env: RETAIL_S3_SECRET_KEY}}
  resources:
    warehouse:
      class: pysetl_dagster.defs.profiles:Credentials
      config: {{user: retail, password: {{env: RETAIL_DB_PASSWORD}}}}
""",
    )
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    storage = tmp_path / "storage"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PYSETL_DAGSTER_STORAGE": str(storage),
        "PYTHONPATH": str(ROOT),
        "PYSPARK_PYTHON": sys.executable,
        PROFILE_ENV: "secret_test",
        PROFILE_FILE_ENV: str(profile),
        "RETAIL_S3_SECRET_KEY": SECRET,
        "RETAIL_DB_PASSWORD": DB_PASSWORD,
    }
    # A tiny asset job of the example that uses the warehouse resource and reads the Spark
    # property, so the test fails if the secrets never arrive.
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import dagster as dg\n"
        "from pyspark.sql import SparkSession\n"
        "import definitions\n"
        "@dg.asset(required_resource_keys={'warehouse', 'pyspark'})\n"
        "def secret_probe(context: dg.AssetExecutionContext) -> None:\n"
        "    spark = SparkSession.builder.getOrCreate()\n"
        "    ok_spark = spark.sparkContext.getConf().get('spark.hadoop.fs.s3a.secret.key')\n"
        "    ok_db = context.resources.warehouse.password\n"
        f"    assert ok_spark == {SECRET!r} and ok_db == {DB_PASSWORD!r}\n"
        "    context.log.info(f'warehouse: {context.resources.warehouse!r}')\n"
        "defs = dg.Definitions.merge(definitions.defs, dg.Definitions(\n"
        "    assets=[secret_probe], jobs=[dg.define_asset_job('with_probe',\n"
        "        selection=dg.AssetSelection.groups('retail') | dg.AssetSelection.assets(\n"
        "            'secret_probe'), executor_def=dg.in_process_executor)]))\n"
    )
    result = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "job", "execute", "-f", str(probe),
         "-j", "with_probe"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert "password=***" in result.stdout + result.stderr
    io = SparkParquetIOManager(base_path=str(storage))
    spark = SparkSession.builder.getOrCreate()
    for key, expected in native_outputs.items():
        assert_same_data(
            spark.read.parquet(str(io.current_version_path(dg.AssetKey([key])))), expected
        )

    texts: dict[str, str] = {"cli output": result.stdout + result.stderr}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        (run,) = instance.get_runs()
        texts["run config"] = repr(run.run_config)
        texts["event log"] = "\n".join(repr(e) for e in instance.all_logs(run.run_id))
        for asset_key in instance.get_asset_keys():
            event = instance.get_latest_materialization_event(asset_key)
            texts[f"metadata of {asset_key.to_user_string()}"] = repr(event)
    for folder in (home, storage, events_dir):
        for path in folder.rglob("*"):
            if path.is_file():
                texts[str(path)] = path.read_bytes().decode("utf-8", "replace")
    assert any(p.startswith(str(events_dir)) for p in texts), "Spark wrote no event log"
    spark_env = "".join(t for p, t in texts.items() if p.startswith(str(events_dir)))
    assert "spark.hadoop.fs.s3a.secret.key" in spark_env  # logged, but redacted
    leaks = [where for where, text in texts.items() if SECRET in text or DB_PASSWORD in text]
    assert leaks == []
