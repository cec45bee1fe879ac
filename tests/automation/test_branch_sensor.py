"""Branching sensors evaluated in-process (`build_sensor_context` on real Definitions, real
storage, the test SparkSession): decisions from the manifest with no Spark job, the one-aggregate
fallback, A/B rules and the variants' comparison, external decisions over HTTP, a run that
takes the sensor's decision instead of evaluating its branch again, and one that fails because
its upstream got a newer version than the one decided on. The daemon's view is in
`test_branch_sensor_daemon.py`."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from pyspark.sql import SparkSession

from pysetl_dagster import (
    PySetlDefinitionError,
    PySparkSessionResource,
    build_definitions,
    load_profile,
    pysetl_pipeline,
)
from pysetl_dagster.automation.branching import alternate, hash_of_partition, ratio
from pysetl_dagster.automation.conditions import ConditionInputs, when_external
from tests.fixtures.branching_location import build
from tests.fixtures.conditions_pipeline import build_ab_pipeline, build_branch_pipeline
from tests.fixtures.numbers_pipeline import build_numbers_pipeline


def _tick(
    defs: dg.Definitions, name: str, instance: dg.DagsterInstance, cursor: str | None = None
) -> Any:
    """One evaluation of the sensor as the daemon does it (a fresh cursor unless given)."""
    sensor = defs.get_repository_def().get_sensor_def(name)
    with dg.build_sensor_context(
        instance=instance, repository_def=defs.get_repository_def(), cursor=cursor
    ) as context:
        return sensor.evaluate_tick(context)


def _ungrouped_jobs(spark: SparkSession) -> int:
    return len(spark.sparkContext.statusTracker().getJobIdsForGroup(None))


def test_decisions_from_the_manifest_take_no_spark_job_and_ab_compares_variants(
    spark: SparkSession, tmp_path: Path
) -> None:
    storage = tmp_path / "storage"
    defs = build(str(storage), PySparkSessionResource(master="local[2]", stop_at_exit=False))
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = defs.resolve_job_def("ab_assets").execute_in_process(
            run_config={"ops": {"numbers": {"config": {"n": 4}}}},
            tags={"pysetl/pricing": "both"},
            instance=instance,
        )
        assert result.success
        manifest_path = storage / "numbers" / "_current.json"
        manifest = json.loads(manifest_path.read_text())
        # both data conditions of `gate` were observed during the write of `numbers`
        assert sorted(v for v in manifest["aggregates"].values()) == [False, True]

        before = _ungrouped_jobs(spark)
        gate = _tick(defs, "gate_branching", instance)
        assert _ungrouped_jobs(spark) == before, "a decision from the manifest ran a Spark job"
        (request,) = gate.run_requests or []
        assert request.asset_selection == [dg.AssetKey("many_doubled")]
        assert "(recorded with Numbers version" in request.tags["pysetl/condition.many_doubled"]
        assert request.tags["pysetl/condition.few_doubled"].startswith("false: ")

        # A/B: the first assignment is `a`; the variants' metrics side by side on both assets
        ab = _tick(defs, "ab_branching", instance)
        (ab_request,) = ab.run_requests or []
        assert ab_request.tags["pysetl/pricing"] == "a"
        assert ab_request.asset_selection == [dg.AssetKey("pricing_a")]
        # the next tick on the same inputs requests nothing (the next assignment waits for a
        # new upstream version)
        again = _tick(defs, "ab_branching", instance, ab.cursor)
        assert not again.run_requests
        assert again.skip_message.startswith("Nothing changed since the last run")
        observations = {o.asset_key.to_user_string(): o for o in ab.asset_events}
        assert set(observations) == {"pricing_a", "pricing_b"}
        table = observations["pricing_a"].metadata["pysetl/ab_comparison"].value
        assert str(table).startswith("| metric | a | b |")
        assert "| pysetl/store_s |" in str(table)

        # a version written before the condition existed: ONE Spark aggregate decides
        del manifest["aggregates"]
        manifest_path.write_text(json.dumps(manifest))
        before = _ungrouped_jobs(spark)
        (fallback,) = _tick(defs, "gate_branching", instance).run_requests or []
        assert _ungrouped_jobs(spark) > before  # one aggregate query per condition
        assert (
            "one Spark aggregate on Numbers version"
            in fallback.tags["pysetl/condition.many_doubled"]
        )
        assert fallback.run_key == request.run_key  # the same inputs and values


def test_a_run_on_a_newer_upstream_version_than_decided_on_fails_and_the_next_tick_redecides(
    spark: SparkSession, tmp_path: Path
) -> None:
    """The run a tick requested names the versions it decided on; a version written between
    the tick and the run fails the run's step naming both, and the next tick decides anew."""
    storage = tmp_path / "storage"
    defs = build(str(storage), PySparkSessionResource(master="local[2]", stop_at_exit=False))
    job = defs.resolve_job_def("gate_assets")
    numbers = [dg.AssetKey("numbers")]

    def store_numbers(n: int) -> str:
        config = {"ops": {"numbers": {"config": {"n": n}}}}
        assert job.execute_in_process(config, instance=instance, asset_selection=numbers).success
        return str(json.loads((storage / "numbers" / "_current.json").read_text())["version"])

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        five = store_numbers(5)
        tick = _tick(defs, "gate_branching", instance)
        (request,) = tick.run_requests or []
        assert request.tags["pysetl/decided_on.numbers"] == five
        one = store_numbers(1)  # before the requested run starts

        stale = job.execute_in_process(
            instance=instance,
            asset_selection=request.asset_selection,
            tags=request.tags,
            raise_on_error=False,
        )
        assert not stale.success
        (failure,) = stale.get_step_failure_events()
        error = failure.step_failure_data.error
        assert error is not None
        message = error.to_string()
        assert (
            "Factory ManyDoubled (asset many_doubled): branching sensor gate_branching decided "
            f"this run on numbers version {five}, but this step reads numbers version {one}"
        ) in message, message
        assert not (storage / "many_doubled").exists()  # nothing written

        (redecided,) = _tick(defs, "gate_branching", instance, tick.cursor).run_requests or []
        assert redecided.asset_selection == [dg.AssetKey("few_doubled")]
        assert redecided.tags["pysetl/decided_on.numbers"] == one
        # (a run on the version decided on succeeds: the daemon test's runs)


def test_a_run_the_sensor_decided_takes_the_decision_instead_of_evaluating_again(
    resources: dict[str, Any], tmp_path: Path
) -> None:
    pipeline = pysetl_pipeline(build_branch_pipeline(), name="decided_branch")
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        # the run flag says full; the sensor's decision (a run tag) says incremental: it wins
        result = dg.materialize(
            pipeline.assets,
            resources=resources,
            instance=instance,
            tags={
                "pysetl/incremental": "false",
                "pysetl/decided_by": "decided_branch_branching",
                "pysetl/condition.doubled_branch": "true: when_config('incremental'): flag true",
            },
        )
        assert result.success
        (event,) = [
            e
            for e in result.get_asset_materialization_events()
            if e.materialization.asset_key == dg.AssetKey("doubled_branch")
        ]
        taken = event.materialization.metadata["pysetl/branch_taken"].value
        assert str(taken).startswith(
            "IncrementalDoubled (decided by sensor decided_branch_branching before the run"
        )


def test_profile_flags_decide_config_conditions_unless_the_sensor_says_otherwise(
    resources: dict[str, Any], tmp_path: Path
) -> None:
    """A profile's `flags` section is what a branching sensor decides `when_config` with, per
    environment; the sensor's own `flags` win over it."""
    profile_file = tmp_path / "profiles.yaml"
    profile_file.write_text("base: {}\ndev:\n  flags:\n    incremental: true\n")
    profile = load_profile(profile_file, "dev")
    assert profile.flag_values() == {"incremental": True}
    pipeline = pysetl_pipeline(build_branch_pipeline(), name="flagged")
    pipeline.branch_sensor(name="by_profile")
    pipeline.branch_sensor(name="by_sensor", flags={"incremental": False})
    defs = build_definitions(pipeline, profile=profile, resources=resources)
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        assert dg.materialize(pipeline.assets, resources=resources, instance=instance).success
        for name, holds in (("by_profile", "true"), ("by_sensor", "false")):
            (request,) = _tick(defs, name, instance).run_requests
            decision = request.tags["pysetl/condition.doubled_branch"]
            assert decision.startswith(f"{holds}: when_config('incremental')"), (name, decision)


class _Decisions(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/slow":
            time.sleep(2)
        ok = self.headers.get("Authorization") == "Bearer s3cret-token"
        answer = {"holds": ok and body["flags"].get("region") == "eu", "reason": "policy 7"}
        data = json.dumps(answer).encode()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a client timed out
            self.send_response(200 if ok else 403)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def decision_service() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Decisions)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_external_decision_over_http_with_a_secret_header_and_a_timeout(
    decision_service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DECISION_TOKEN", "Bearer s3cret-token")
    headers = {"Authorization": dg.EnvVar("DECISION_TOKEN")}
    cond = when_external("approval", url=decision_service + "/", headers=headers)
    verdict = cond.evaluate(ConditionInputs({"pysetl/region": "eu"}, None, {}))
    assert verdict.holds
    assert verdict.reason == (
        "when_external('approval'): endpoint on 127.0.0.1:"
        f"{decision_service.rsplit(':', 1)[1]} answered True (policy 7)"
    )
    assert not cond.evaluate(ConditionInputs({"pysetl/region": "us"}, None, {})).holds
    slow = when_external(
        "approval", url=decision_service + "/slow", headers=headers, timeout_seconds=0.3
    )
    with pytest.raises(RuntimeError, match=r"endpoint on 127\.0\.0\.1:\d+ failed: .*timed out"):
        slow.evaluate(ConditionInputs({}, None, {}))
    monkeypatch.delenv("DECISION_TOKEN")
    with pytest.raises(ValueError, match="DECISION_TOKEN is not set"):
        cond.evaluate(ConditionInputs({}, None, {}))

    def slow_decide(request: dict[str, Any]) -> bool:
        time.sleep(1)
        return True

    with pytest.raises(TimeoutError, match=r"no answer within 0\.2 s"):
        when_external("slow", slow_decide, timeout_seconds=0.2).evaluate(
            ConditionInputs({}, None, {})
        )


def test_ab_rules_and_declaration_errors() -> None:
    labels = ["a", "b"]
    assert [alternate().assign(labels, i, "")[0] for i in range(4)] == ["a", "b", "a", "b"]
    quarter = [ratio(0.25).assign(labels, i, "")[0] for i in range(8)]
    assert quarter == ["a", "a", "a", "b", "a", "a", "a", "b"]
    by_key = {k: hash_of_partition(0.5).assign(labels, 0, k)[0] for k in map(str, range(200))}
    assert by_key == {k: hash_of_partition(0.5).assign(labels, 7, k)[0] for k in by_key}
    assert 70 < sum(v == "b" for v in by_key.values()) < 130
    with pytest.raises(PySetlDefinitionError, match="has no conditioned Factory"):
        pysetl_pipeline(build_numbers_pipeline(), name="plain").branch_sensor()
    with pytest.raises(PySetlDefinitionError, match=r"names no variants\(\.\.\.\).*pricing"):
        pysetl_pipeline(build_ab_pipeline(), name="abx").branch_sensor(ab={"price": alternate()})
    with pytest.raises(PySetlDefinitionError, match="between 0 and 1"):
        ratio(1.5)
