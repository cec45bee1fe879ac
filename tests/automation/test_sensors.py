"""Sensors, schedules and cross-pipeline links generated from a pipeline's declarations.

Sensors are evaluated the way the daemon does (`evaluate_tick` with the previous tick's cursor)
against real temporary Dagster instances; requested runs really run (real Spark, real files).
"""

from __future__ import annotations

import http.server
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import dagster as dg
import pytest
from pysetl.workflow import Factory, Pipeline, Stage
from pyspark.sql import SparkSession
from typedspark import DataSet

from pysetl_dagster import (
    PySetlDefinitionError,
    SparkParquetIOManager,
    build_definitions,
    pysetl_pipeline,
)
from tests.fixtures.inbox_pipeline import (
    EventTotals,
    LoadEvents,
    TotalsReport,
    build_inbox_pipeline,
    build_report_pipeline,
    inbox_and_report,
    write_csv,
)
from tests.fixtures.numbers_pipeline import NumberRow, build_numbers_pipeline


def tick(
    sensor: dg.SensorDefinition, defs: dg.Definitions, instance: dg.DagsterInstance, cursor: Any
) -> Any:
    """One evaluation, as the daemon runs it, continuing from `cursor`."""
    context = dg.build_sensor_context(instance=instance, definitions=defs, cursor=cursor)
    return sensor.evaluate_tick(context)


def run_request(
    defs: dg.Definitions, request: dg.RunRequest, job: str, instance: dg.DagsterInstance
) -> dg.ExecuteInProcessResult:
    """Run what a sensor requested: its job, asset selection and tags."""
    return defs.resolve_job_def(job).execute_in_process(
        instance=instance, asset_selection=request.asset_selection, tags=request.tags
    )


def stored(storage: Path, key: str) -> Any:
    io = SparkParquetIOManager(base_path=str(storage))
    asset_key = dg.AssetKey(key)
    manifest = io.current_manifest(asset_key) or {}
    return io.read_version(io.current_version_path(asset_key), manifest.get("schema"))


# -- file sensor -------------------------------------------------------------------------------


def test_file_sensor_triggers_once_per_settled_file_and_the_run_reads_it(
    spark: SparkSession, resources: dict[str, Any], storage: Path, tmp_path: Path
) -> None:
    inbox_dir = tmp_path / "inbox"
    inbox_dir.mkdir()
    inbox = pysetl_pipeline(build_inbox_pipeline(inbox_dir), name="inbox")
    sensor = inbox.on_new_files(inbox_dir, pattern="*.csv", settle_seconds=5)
    assert sensor.name == "inbox_new_files"
    defs = build_definitions(inbox, resources=resources)
    assert defs.resolve_sensor_def("inbox_new_files") is sensor

    with dg.instance_for_test() as instance:
        write_csv(inbox_dir / "a.csv", [("x", 1), ("y", 2)])
        write_csv(inbox_dir / "b.csv.part", [("x", 100)])  # a copy in progress: ignored
        first = tick(sensor, defs, instance, None)
        assert len(first.run_requests) == 1
        request = first.run_requests[0]
        assert json.loads(request.tags["pysetl/new_files"]) == ["a.csv"]
        # the Factories reading the folder, and what depends on them
        assert request.asset_selection == [dg.AssetKey("load_events"), dg.AssetKey("event_totals")]

        again = tick(sensor, defs, instance, first.cursor)
        assert again.run_requests == []
        assert "No new file" in (again.skip_message or "")

        # Being written (modified just now): no request until it has settled.
        growing = write_csv(inbox_dir / "c.csv", [("x", 10)], age_seconds=None)
        writing = tick(sensor, defs, instance, again.cursor)
        assert writing.run_requests == []
        assert "1 still being written" in (writing.skip_message or "")

        result = run_request(defs, request, "inbox_assets", instance)
        assert result.success
        assert result.dagster_run.tags["pysetl/new_files"] == '["a.csv"]'

        write_csv(growing, [("x", 10), ("y", 20)])  # the copy completes and settles
        settled = tick(sensor, defs, instance, writing.cursor)
        assert len(settled.run_requests) == 1
        assert json.loads(settled.run_requests[0].tags["pysetl/new_files"]) == ["c.csv"]
        assert settled.run_requests[0].run_key != request.run_key
        assert run_request(defs, settled.run_requests[0], "inbox_assets", instance).success

        totals = {r["kind"]: r["total"] for r in stored(storage, "event_totals").collect()}
        assert totals == {"x": 11, "y": 22}  # a.csv and c.csv, never the .part file

        # A replaced file (new size and mtime) is new again; nothing else is.
        write_csv(inbox_dir / "a.csv", [("x", 1), ("y", 2), ("z", 3)])
        replaced = tick(sensor, defs, instance, settled.cursor)
        assert [json.loads(r.tags["pysetl/new_files"]) for r in replaced.run_requests] == [
            ["a.csv"]
        ]


def test_file_sensor_names_factories_explicitly(tmp_path: Path) -> None:
    inbox = pysetl_pipeline(build_inbox_pipeline(tmp_path), name="inbox")
    sensor = inbox.on_new_files(tmp_path / "elsewhere", factories=[EventTotals], name="totals")
    both = inbox.on_new_files(tmp_path, factories=[LoadEvents, "event_totals"], name="both")
    defs = build_definitions(inbox, storage_path=str(tmp_path / "s"))
    with dg.instance_for_test() as instance:
        assert "does not exist" in (tick(sensor, defs, instance, None).skip_message or "")
        (tmp_path / "elsewhere").mkdir()
        write_csv(tmp_path / "elsewhere" / "x.txt", [("x", 1)])
        (request,) = tick(sensor, defs, instance, None).run_requests
    assert request.asset_selection == [dg.AssetKey("event_totals")]
    assert [n.name for n in inbox.graph.nodes] == ["LoadEvents", "EventTotals"]
    assert both.name == "both" and defs.resolve_sensor_def("both") is both


def test_a_sensor_naming_a_missing_factory_is_a_load_time_error(tmp_path: Path) -> None:
    inbox = pysetl_pipeline(build_inbox_pipeline(tmp_path), name="inbox")
    with pytest.raises(PySetlDefinitionError, match=r"'inbox_new_files'.*'CleanOrdrs'.*LoadEvents"):
        inbox.on_new_files(tmp_path, factories=["CleanOrdrs"])
    with pytest.raises(PySetlDefinitionError, match=r"names Factory 'TotalsReport'"):
        inbox.on_new_files(tmp_path, factories=[TotalsReport])
    with pytest.raises(PySetlDefinitionError, match=r"no external input .* reads from"):
        inbox.on_new_files(tmp_path / "other")
    with pytest.raises(PySetlDefinitionError, match=r"automation_condition .* 'Nope'"):
        pysetl_pipeline(
            build_inbox_pipeline(tmp_path),
            name="inbox",
            automation_condition={"Nope": dg.AutomationCondition.eager()},
        )
    with pytest.raises(PySetlDefinitionError, match=r"reads no other pipeline's output"):
        inbox.on_upstream()
    with pytest.raises(PySetlDefinitionError, match=r"'TotalsReport'.*not in the pipeline"):
        inbox.output(TotalsReport)


# -- cross-pipeline ----------------------------------------------------------------------------


def test_two_linked_pipelines_share_one_asset_graph(tmp_path: Path) -> None:
    inbox, report = inbox_and_report(tmp_path)
    defs = build_definitions(inbox, report, storage_path=str(tmp_path / "s"))
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == {
        "events_inbox", "load_events", "event_totals", "totals_report",
    }  # fmt: skip
    node = graph.get(dg.AssetKey("totals_report"))
    assert node.parent_keys == {dg.AssetKey("event_totals")}
    assert graph.get(dg.AssetKey("event_totals")).group_name == "inbox"
    defs.resolve_job_def("inbox_report_stages")

    with pytest.raises(
        PySetlDefinitionError, match=r"'inbox_report' reads 'event_totals'.*'inbox'"
    ):
        build_definitions(report, storage_path=str(tmp_path / "s"))


def test_a_link_follows_the_upstream_key_prefix(tmp_path: Path) -> None:
    from pysetl_dagster import PySetlTranslator

    eu = pysetl_pipeline(
        build_inbox_pipeline(tmp_path), name="eu", translator=PySetlTranslator("eu")
    )
    report = pysetl_pipeline(build_report_pipeline(eu), name="eu_report")
    defs = build_definitions(eu, report, storage_path=str(tmp_path / "s"))
    node = defs.resolve_asset_graph().get(dg.AssetKey("totals_report"))
    assert node.parent_keys == {dg.AssetKey(["eu", "event_totals"])}


def test_upstream_materialization_requests_the_downstream_pipeline(
    spark: SparkSession, resources: dict[str, Any], storage: Path, tmp_path: Path
) -> None:
    inbox, report = inbox_and_report(tmp_path)
    write_csv(tmp_path / "a.csv", [("x", 3), ("y", 1)])
    sensor = report.on_upstream()
    defs = build_definitions(inbox, report, resources=resources)
    with dg.instance_for_test() as instance:
        nothing = tick(sensor, defs, instance, None)
        assert nothing.run_requests == []

        assert defs.resolve_job_def("inbox_assets").execute_in_process(instance=instance).success
        second = tick(sensor, defs, instance, nothing.cursor)
        (request,) = second.run_requests
        assert request.asset_selection == [dg.AssetKey("totals_report")]
        assert request.tags["pysetl/upstream"] == "event_totals"
        assert tick(sensor, defs, instance, second.cursor).run_requests == []

        # The requested run reads the upstream pipeline's stored asset through the IO manager;
        # the Stage job of the downstream pipeline does the same.
        assert run_request(defs, request, "inbox_report_assets", instance).success
        shares = {r["kind"]: r["share_pct"] for r in stored(storage, "totals_report").collect()}
        assert shares == {"x": 75, "y": 25}

        # A new upstream version is a new input of the downstream Factory: recomputed, never
        # reused from the cache.
        write_csv(tmp_path / "b.csv", [("y", 4)])
        assert defs.resolve_job_def("inbox_assets").execute_in_process(instance=instance).success
        (again,) = tick(sensor, defs, instance, second.cursor).run_requests
        assert run_request(defs, again, "inbox_report_assets", instance).success
        shares = {r["kind"]: r["share_pct"] for r in stored(storage, "totals_report").collect()}
        assert shares == {"x": 37, "y": 62}  # 3 of 8 and 5 of 8, truncated
        assert (
            defs.resolve_job_def("inbox_report_stages")
            .execute_in_process(instance=instance)
            .success
        )


def test_eager_automation_condition_runs_the_downstream_factory(
    spark: SparkSession, resources: dict[str, Any], tmp_path: Path
) -> None:
    inbox = pysetl_pipeline(build_inbox_pipeline(tmp_path), name="inbox")
    report = pysetl_pipeline(
        build_report_pipeline(inbox),
        name="inbox_report",
        automation_condition={TotalsReport: dg.AutomationCondition.eager()},
    )
    write_csv(tmp_path / "a.csv", [("x", 1)])
    defs = build_definitions(inbox, report, resources=resources)
    spec = defs.resolve_asset_graph().get(dg.AssetKey("totals_report"))
    assert spec.automation_condition == dg.AutomationCondition.eager()
    assert defs.resolve_asset_graph().get(dg.AssetKey("event_totals")).automation_condition is None
    with dg.instance_for_test() as instance:
        before = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        assert before.total_requested == 0  # its upstream was never materialized
        assert defs.resolve_job_def("inbox_assets").execute_in_process(instance=instance).success
        after = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=before.cursor
        )
        assert after.get_requested_partitions(dg.AssetKey("totals_report")) == {None}
        assert after.total_requested == 1


def test_a_factory_can_declare_its_own_automation_condition(tmp_path: Path) -> None:
    class EagerTotals(EventTotals):
        automation_condition = dg.AutomationCondition.on_cron("0 * * * *")

    pipeline = build_inbox_pipeline(tmp_path)
    pipeline.stages[-1].clear_registry().add_factory(EagerTotals())
    defs = build_definitions(
        pysetl_pipeline(pipeline, name="inbox"), storage_path=str(tmp_path / "s")
    )
    node = defs.resolve_asset_graph().get(dg.AssetKey("eager_totals"))
    assert node.automation_condition == dg.AutomationCondition.on_cron("0 * * * *")


# -- schedules ---------------------------------------------------------------------------------


def test_schedules_from_the_declaration(tmp_path: Path) -> None:
    numbers = pysetl_pipeline(build_numbers_pipeline(), name="numbers")
    on = numbers.schedule(cron="30 6 * * 1-5", timezone="Europe/Paris", enabled=True)
    off = numbers.daily_schedule()
    defs = build_definitions(numbers, storage_path=str(tmp_path))
    assert defs.resolve_schedule_def("numbers_schedule") is on
    assert on.execution_timezone == "Europe/Paris"
    assert on.default_status == dg.DefaultScheduleStatus.RUNNING
    assert on.job_name == "numbers_assets"
    assert off.name == "numbers_daily"
    assert off.default_status == dg.DefaultScheduleStatus.STOPPED

    with pytest.raises(PySetlDefinitionError, match=r"'numbers_x'.*unknown timezone 'Mars/Base'"):
        numbers.schedule(cron="0 1 * * *", timezone="Mars/Base", name="numbers_x")
    with pytest.raises(PySetlDefinitionError, match=r"'numbers_y'.*five fields"):
        numbers.schedule(cron="every day", name="numbers_y")


def test_a_profile_decides_undeclared_schedules_only(tmp_path: Path) -> None:
    from pysetl_dagster import load_profile

    profiles = tmp_path / "profiles.yaml"
    profiles.write_text("base:\n  schedules:\n    enabled: true\nlive: {}\n")
    numbers = pysetl_pipeline(build_numbers_pipeline(), name="numbers")
    numbers.schedule(cron="0 1 * * *", name="numbers_profile")
    numbers.schedule(cron="0 2 * * *", name="numbers_off", enabled=False, timezone="UTC")
    defs = build_definitions(
        numbers, storage_path=str(tmp_path), profile=load_profile(profiles, "live")
    )
    assert defs.resolve_schedule_def("numbers_profile").default_status.value == "RUNNING"
    off = defs.resolve_schedule_def("numbers_off")
    assert off.default_status.value == "STOPPED"
    assert off.execution_timezone == "UTC"


# -- run failure -------------------------------------------------------------------------------


class Broken(Factory[DataSet[NumberRow]]):
    """Fails in process(): a run of its pipeline fails."""

    def read(self) -> Self:
        return self

    def process(self) -> Self:
        raise RuntimeError("the feed is corrupt")

    def write(self) -> Self:
        return self

    def get(self) -> DataSet[NumberRow]:
        raise AssertionError("unreachable")


class Webhook:
    """A real HTTP server on loopback that keeps what is POSTed to it."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        received = self.received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append({"path": self.path, "body": json.loads(body)})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/pysetl?token=s3cret"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def webhook() -> Iterator[Webhook]:
    server = Webhook()
    try:
        yield server
    finally:
        server.close()


def test_failure_sensor_records_the_failure_and_calls_the_hooks(
    spark: SparkSession,
    resources: dict[str, Any],
    webhook: Webhook,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYSETL_TEST_WEBHOOK", webhook.url)
    fragile = pysetl_pipeline(Pipeline().add_stage(Stage().add_factory(Broken())), name="fragile")
    called: list[dict[str, Any]] = []
    sensor = fragile.on_failure(hook=called.append, webhook_url=dg.EnvVar("PYSETL_TEST_WEBHOOK"))
    defs = build_definitions(fragile, resources=resources)
    webhook.received.clear()
    with dg.instance_for_test() as instance:
        start = tick(sensor, defs, instance, None)  # the daemon's first tick sets the cursor
        result = defs.resolve_job_def("fragile_assets").execute_in_process(
            instance=instance, raise_on_error=False
        )
        assert not result.success
        assert not called and not webhook.received  # nothing before the sensor runs

        tick(sensor, defs, instance, start.cursor)
        (record,) = called
        assert record["run_id"] == result.run_id
        assert record["job"] == "fragile_assets"
        assert [f["factory"] for f in record["failed_steps"]] == ["Broken"]
        assert "the feed is corrupt" in record["failed_steps"][0]["error"]
        (posted,) = webhook.received
        assert posted["path"] == "/hooks/pysetl?token=s3cret"
        assert posted["body"]["run_id"] == result.run_id
        tags = instance.get_run_by_id(result.run_id).tags  # type: ignore[union-attr]
        assert tags["pysetl/failure_recorded"] == "fragile_on_failure"
        assert tags["pysetl/failure_factories"] == "Broken"
        assert "HTTP 204" in tags["pysetl/failure_hook"]
        assert "s3cret" not in tags["pysetl/failure_hook"]  # the URL's secret stays out


def test_failure_sensor_needs_a_hook(tmp_path: Path) -> None:
    numbers = pysetl_pipeline(build_numbers_pipeline(), name="numbers")
    with pytest.raises(PySetlDefinitionError, match=r"'numbers_on_failure'.*`hook`"):
        numbers.on_failure()


# -- the example project -----------------------------------------------------------------------


def test_example_returns_pipeline_file_sensor_and_link(
    spark: SparkSession,
    resources: dict[str, Any],
    storage: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import definitions
    from definitions.returns import build_returns

    graph = definitions.defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey("return_rates")).parent_keys == {
        dg.AssetKey("clean_returns"), dg.AssetKey("enriched_orders"),
    }  # fmt: skip
    assert graph.get(dg.AssetKey("enriched_orders")).group_name == "retail"  # one asset, retail's
    sensors = {s.name: s for s in definitions.defs.sensors or []}
    assert {"returns_new_files", "returns_on_upstream", "retail_on_failure"} <= set(sensors)
    assert all(s.default_status == dg.DefaultSensorStatus.STOPPED for s in sensors.values())

    monkeypatch.setenv("RETAIL_INBOX", str(tmp_path / "inbox"))
    returns = build_returns(definitions.retail)
    defs = build_definitions(definitions.retail, returns, resources=resources)
    sensor = returns.sensors[0]
    with dg.instance_for_test() as instance:
        assert "does not exist" in (tick(sensor, defs, instance, None).skip_message or "")
        upstream = ["clean_customers", "clean_orders", "clean_products", "enriched_orders"]
        assert (
            defs.resolve_job_def("retail_assets")
            .execute_in_process(
                instance=instance, asset_selection=[dg.AssetKey(k) for k in upstream]
            )
            .success
        )
        (tmp_path / "inbox").mkdir()
        slip = tmp_path / "inbox" / "slip.csv"
        slip.write_text(
            "order_id,product_id,quantity,reason\n1,14,1, Damaged\n2,5,2,wrong size\n3,5,0,x\n"
        )
        os.utime(slip, (time.time() - 60, time.time() - 60))
        (tmp_path / "inbox" / "later.csv.tmp").write_text("order_id\n")  # still being copied
        first = tick(sensor, defs, instance, None)
        (request,) = first.run_requests
        assert json.loads(request.tags["pysetl/new_files"]) == ["slip.csv"]
        assert request.asset_selection == [
            dg.AssetKey("clean_returns"),
            dg.AssetKey("return_rates"),
        ]
        assert run_request(defs, request, "returns_assets", instance).success
        assert tick(sensor, defs, instance, first.cursor).run_requests == []
    rates = stored(storage, "return_rates")
    returned = {r["product_id"]: r["returned"] for r in rates.where("returned > 0").collect()}
    assert returned == {14: 1, 5: 2}  # the zero-quantity line was dropped
