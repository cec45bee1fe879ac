"""The example on a real Spark standalone cluster (a master and two workers on 127.0.0.1).

The cluster comes from the pyspark installation (`bin/spark-class`); the example switches to it
by profile only, in a subprocess (this test session already holds a local SparkSession), with
its run recorded in the production stack's PostgreSQL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psycopg2
import pyspark
import pytest
from pyspark.sql import DataFrame, SparkSession

from pysetl_dagster import SparkParquetIOManager
from tests.conftest import ROOT, assert_same_data, fast_jvm_options
from tests.fixtures.prod_stack import Proc, ProdStack, free_port, wait_for, write_profile

SPARK_HOME = Path(pyspark.__file__).parent


@dataclass
class SparkCluster:
    master_url: str
    ui_port: int
    work_dirs: list[Path]

    def state(self) -> dict[str, object]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/", timeout=5) as r:
            return json.loads(r.read())  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def spark_cluster() -> Iterator[SparkCluster]:
    tmp = Path(tempfile.mkdtemp(prefix="pysetl-spark-cluster-"))
    env = {
        **os.environ,
        "SPARK_HOME": str(SPARK_HOME),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(tmp),
        "PYSPARK_PYTHON": sys.executable,
    }
    port, ui_port = free_port(), free_port()
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    procs = [
        Proc(
            "master",
            [
                spark_class,
                "org.apache.spark.deploy.master.Master",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--webui-port",
                str(ui_port),
            ],
            tmp / "master.log",
            env,
        )
    ]
    for i in (1, 2):
        (tmp / f"work{i}").mkdir()
        procs.append(
            Proc(
                f"worker{i}",
                [
                    spark_class,
                    "org.apache.spark.deploy.worker.Worker",
                    f"spark://127.0.0.1:{port}",
                    "--host",
                    "127.0.0.1",
                    "--webui-port",
                    str(free_port()),
                    "--cores",
                    "1",
                    "--memory",
                    "1g",
                    "--work-dir",
                    str(tmp / f"work{i}"),
                ],
                tmp / f"worker{i}.log",
                env,
            )
        )
    cluster = SparkCluster(f"spark://127.0.0.1:{port}", ui_port, [tmp / "work1", tmp / "work2"])
    try:
        for proc in procs:
            proc.start()
        wait_for(
            "a Spark master with two alive workers",
            lambda: cluster.state().get("aliveworkers") == 2,
            120,
            [p.log for p in procs],
        )
        yield cluster
    finally:
        for proc in reversed(procs):
            proc.stop()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def test_example_runs_on_the_cluster_by_switching_profile(
    spark_cluster: SparkCluster,
    prod_stack: ProdStack,
    native_outputs: dict[str, DataFrame],
    tmp_path: Path,
) -> None:
    storage = tmp_path / "storage"
    profile = tmp_path / "profiles.yaml"
    write_profile(
        profile,
        storage,
        extra=f"""
cluster:
  extends: prod
  spark:
    master: "{spark_cluster.master_url}"
    remote: null  # a classic session on this cluster (prod's Connect server is compose's)
    config:
      spark.driver.host: "127.0.0.1"
      spark.driver.bindAddress: "127.0.0.1"
      spark.executor.memory: "512m"
      spark.executor.cores: "1"
      spark.cores.max: "2"
      spark.ui.enabled: "false"
      # the executors start as fast as the session's other JVMs (tests/conftest.py)
      spark.executor.extraJavaOptions: "{fast_jvm_options()}"
  storage:
    root: "{storage}"
""",
    )
    env = {
        **prod_stack.env,  # the run is recorded in the stack's PostgreSQL
        "PYSETL_DAGSTER_PROFILE": "cluster",
        "PYSETL_DAGSTER_PROFILE_FILE": str(profile),
    }
    started = time.time()
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("dagster")),
            "job",
            "execute",
            "-m",
            "definitions",
            "-j",
            "retail_assets",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]

    io = SparkParquetIOManager(base_path=str(storage))
    spark = SparkSession.builder.getOrCreate()
    for key, expected in native_outputs.items():
        stored = spark.read.parquet(str(io.current_version_path(dg.AssetKey([key]))))
        assert_same_data(stored, expected)

    # The work ran on the cluster: a standalone application that used both workers.
    apps = [
        a
        for a in spark_cluster.state()["completedapps"]  # type: ignore[union-attr]
        if a["name"] == "retail" and a["starttime"] / 1000 >= started - 5
    ]
    assert len(apps) == 1, spark_cluster.state()
    app_id = apps[0]["id"]
    assert str(app_id).startswith("app-")
    # Both workers ran executors of it (each keeps a folder per application it served).
    assert all((work / str(app_id)).is_dir() for work in spark_cluster.work_dirs)
    # The prod run is in the stack's PostgreSQL, its materializations from that application.
    env = prod_stack.env
    conn = psycopg2.connect(
        host=env["DAGSTER_PG_HOST"],
        port=int(env["DAGSTER_PG_PORT"]),
        user=env["DAGSTER_PG_USER"],
        password=env["DAGSTER_PG_PASSWORD"],
        dbname=env["DAGSTER_PG_DB"],
    )
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM event_logs WHERE dagster_event_type = "
                "'ASSET_MATERIALIZATION' AND event LIKE %s",
                (f"%{app_id}%",),
            )
            assert cur.fetchone() == (len(native_outputs),)
    finally:
        conn.close()
