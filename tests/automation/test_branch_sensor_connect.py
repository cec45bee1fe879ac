"""A branching sensor on Spark Connect (issue 20 item 2): a data condition the manifest cannot
answer is decided by one aggregate on the session's Connect server, in a process that starts
no JVM (tests/fixtures/connect_branch_tick.py, against the test session's one Connect
server); a stopped server fails the tick naming the Factory, the condition and how to start
the server again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
from pyspark.sql import SparkSession

from pysetl_dagster import PySparkSessionResource
from pysetl_dagster.spark.connect_server import free_port
from tests.conftest import ROOT
from tests.fixtures.branching_location import build
from tests.fixtures.connect import ConnectTestServer


def test_the_one_aggregate_fallback_decides_on_connect_with_no_jvm_in_the_sensor(
    spark: SparkSession, connect_server: ConnectTestServer, tmp_path: Path
) -> None:
    storage = tmp_path / "storage"
    defs = build(str(storage), PySparkSessionResource(master="local[2]", stop_at_exit=False))
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        # 5 numbers, stored on the test's classic session; the manifest decides: many_doubled
        result = defs.resolve_job_def("gate_assets").execute_in_process(
            run_config={"ops": {"numbers": {"config": {"n": 5}}}},
            instance=instance,
            asset_selection=[dg.AssetKey("numbers")],
        )
        assert result.success
        repository = defs.get_repository_def()
        with dg.build_sensor_context(instance=instance, repository_def=repository) as context:
            tick = repository.get_sensor_def("gate_branching").evaluate_tick(context)
        (by_manifest,) = tick.run_requests or []
    # a version written before the conditions existed: no recorded aggregate to decide from
    manifest_path = storage / "numbers" / "_current.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["aggregates"]
    manifest_path.write_text(json.dumps(manifest))

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "PYSETL_"))}
    env["PYTHONPATH"] = str(ROOT)
    dead = f"sc://127.0.0.1:{free_port()}"  # a stopped server: nobody listens there
    done = subprocess.run(
        [sys.executable, "-m", "tests.fixtures.connect_branch_tick", str(storage),
         connect_server.url, dead],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    print({t: round(out[t]["seconds"], 2) for t in ("first", "again", "stopped")})

    # the Connect session decided, and the process never tried to start a JVM
    assert out["jvm_starts"] == [] and out["jvm"] is False, out
    assert out["connect_mode"] is True
    first = out["first"]
    assert "error" not in first, first.get("error")
    (request,) = first["requests"]
    assert request["selection"] == ["many_doubled"]
    decision = request["tags"]["pysetl/condition.many_doubled"]
    assert decision.startswith("true: when_data(Numbers, rows >= 3): True (one Spark aggregate")
    assert f"Numbers version {manifest['version']}" in decision
    assert request["tags"]["pysetl/condition.few_doubled"].startswith("false: ")
    assert request["run_key"] == by_manifest.run_key  # the same inputs and values
    # each tick released its Connect session on the server when it ended (a code server
    # ticking every 30 s must not pile sessions up there), and the next tick makes a new one
    assert [out[t]["left_open"] for t in ("first", "again", "stopped")] == [False] * 3
    assert out["again"]["skip"].startswith("Nothing changed since the last run"), out["again"]

    # a stopped server fails the tick: Factory, condition, cause and how to restart it
    error = out["stopped"]["error"]
    assert "Factory ManyDoubled (asset many_doubled)" in error, error
    assert "condition when_data(Numbers, rows >= 3) failed: PySetlSparkError" in error, error
    assert f"The Spark Connect server at {dead} is not answering" in error, error
    assert "Start it again (scripts/dev starts one" in error, error
