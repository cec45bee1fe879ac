"""`scripts/dev` on the example, as the quick start runs it: a local Spark Connect server and
`dagster dev`; the UI's server lists the asset graph and materializes it on Connect (no JVM in
a run), and Ctrl-C stops everything."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster_graphql import DagsterGraphQLClient

from tests.conftest import ROOT

ASSET_NODES = """
query { assetNodes { assetKey { path } groupName dependencyKeys { path } } }
"""
# Folders of the running `dagster dev` that tests drop files into.
DEV_DIRS: dict[str, Path] = {}
DEV_PROCESS: dict[str, subprocess.Popen[bytes]] = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterGraphQLClient]:
    tmp = tmp_path_factory.mktemp("dagster_dev")
    home = tmp / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    port = _free_port()
    # a copy of the example project, so a test can edit a Factory as a user would
    project = tmp / "project"
    shutil.copytree(
        ROOT / "definitions",
        project / "definitions",
        symlinks=True,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(ROOT / "workspace.yaml", project / "workspace.yaml")
    # the quick start's script, run from the copy (its root is where the script lives), on this
    # checkout's environment
    shutil.copytree(ROOT / "scripts", project / "scripts")
    shutil.copy(ROOT / "pyproject.toml", project / "pyproject.toml")
    (project / ".venv").symlink_to(sys.prefix)  # this test session's virtualenv
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PYSETL_DAGSTER_STORAGE": str(tmp / "storage"),
        "RETAIL_INBOX": str(tmp / "retail_inbox"),
        # the copied project first, then this checkout's library (not only the installed one)
        "PYTHONPATH": os.pathsep.join([str(project), str(ROOT)]),
        "PYSPARK_PYTHON": sys.executable,
        # the copy's .venv is this session's: scripts/dev must not install into it
        "PYSETL_DAGSTER_VENV_READY": "1",
    }
    DEV_DIRS.update(inbox=tmp / "retail_inbox", log=tmp / "dagster_dev.log", home=home)
    log = open(tmp / "dagster_dev.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        ["bash", str(project / "scripts" / "dev"), "--port", str(port)],
        cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    DEV_PROCESS["proc"] = proc
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                if client._execute(ASSET_NODES)["assetNodes"]:
                    break
            except Exception:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(
                    "dagster dev did not come up:\n" + (tmp / "dagster_dev.log").read_text()[-4000:]
                )
            time.sleep(0.5)
        client.project = project  # type: ignore[attr-defined]
        yield client
    finally:
        if proc.poll() is None:  # test_ctrl_c_stops_dagster_dev_and_the_connect_server did not
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # anything of it left (its server is own group)
        for pid in _processes_mentioning(str(home)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        log.close()


def _processes_mentioning(text: str) -> list[int]:
    """Pids of the processes whose command line or environment (`DAGSTER_HOME=...`: every
    process `scripts/dev` started) contains `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            seen = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:
            continue
        if text.encode() in seen:
            found.append(int(entry.name))
    return found


def _wait(client: DagsterGraphQLClient, run_id: str, seconds: float) -> str | None:
    deadline = time.monotonic() + seconds
    status = None
    while time.monotonic() < deadline:
        status = client.get_run_status(run_id).value
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(0.5)
    return status


def test_ui_shows_the_asset_graph(dagster_dev: DagsterGraphQLClient) -> None:
    nodes = dagster_dev._execute(ASSET_NODES)["assetNodes"]
    by_key = {"/".join(n["assetKey"]["path"]): n for n in nodes}
    assert {"clean_orders", "enriched_orders", "top_products", "orders_csv"} <= set(by_key)
    deps = {"/".join(d["path"]) for d in by_key["enriched_orders"]["dependencyKeys"]}
    assert deps == {"clean_customers", "clean_orders", "clean_products"}
    assert by_key["top_products"]["groupName"] == "retail"


ENGINE_MESSAGES = """
query Logs($runId: ID!) { logsForRun(runId: $runId) { ... on EventConnection {
  events { __typename ... on MessageEvent { message } } } } }
"""


def test_ui_materializes_the_pipeline(dagster_dev: DagsterGraphQLClient) -> None:
    run_id = dagster_dev.submit_job_execution("retail_assets")
    assert _wait(dagster_dev, run_id, 420) == "SUCCESS"
    # scripts/dev pointed the profile's session at its Connect server: the run used it
    url = (DEV_DIRS["home"] / "connect-server" / "url").read_text().strip()
    assert url.startswith("sc://127.0.0.1:")
    # the server's warm-up (a small workload before the first click) ran without error
    assert not (DEV_DIRS["home"] / "connect-server" / "warm-up-error.txt").exists()
    events = dagster_dev._execute(ENGINE_MESSAGES, {"runId": run_id})["logsForRun"]["events"]
    assert any("a Spark Connect session" in str(e.get("message")) for e in events), [
        e.get("message") for e in events if e["__typename"] == "EngineEvent"
    ]


CHECKS = """
query Checks($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode { assetChecksOrError { ... on AssetChecks { checks { name blocking } } } }
  }
}
"""

LAUNCH_CHECK = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
  }
}
"""

RUN_CHECKS = """
query RunChecks($runId: ID!) {
  logsForRun(runId: $runId) {
    ... on EventConnection {
      events {
        __typename
        ... on AssetCheckEvaluationEvent { evaluation { checkName success severity } }
        ... on MaterializationEvent { assetKey { path } }
      }
    }
  }
}
"""


def _launch_selection(
    client: DagsterGraphQLClient,
    assets: list[dict[str, Any]] | None = None,
    checks: list[dict[str, Any]] | None = None,
) -> str:
    """Launch the implicit asset job on a selection, as the UI's asset pages do; the run id."""
    params = {
        "selector": {
            "repositoryLocationName": "definitions",
            "repositoryName": "__repository__",
            "jobName": "__ASSET_JOB",
            "assetSelection": assets or [],
            "assetCheckSelection": checks or [],
        },
        "mode": "default",
        "executionMetadata": {"tags": []},
    }
    launched = client._execute(LAUNCH_CHECK, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return str(launched["run"]["runId"])


def test_ui_shows_checks_and_runs_one_alone(dagster_dev: DagsterGraphQLClient) -> None:
    """As the asset page's Checks tab does: list the checks, then execute one on its own,
    against the stored output (runs after test_ui_materializes_the_pipeline)."""
    node = dagster_dev._execute(CHECKS, {"key": {"path": ["clean_orders"]}})["assetNodeOrError"]
    checks = {c["name"]: c for c in node["assetChecksOrError"]["checks"]}
    assert {"schema__columns", "quantity__greater_than", "status__isin", "unique__order_id"} <= set(
        checks
    )
    assert checks["status__isin"]["blocking"]

    check = {"assetKey": {"path": ["clean_orders"]}, "name": "status__isin"}
    run_id = _launch_selection(dagster_dev, checks=[check])
    assert _wait(dagster_dev, run_id, 240) == "SUCCESS"
    events = dagster_dev._execute(RUN_CHECKS, {"runId": run_id})["logsForRun"]["events"]
    evaluations = [e["evaluation"] for e in events if "evaluation" in e]
    assert evaluations == [{"checkName": "status__isin", "success": True, "severity": "ERROR"}]
    assert not [e for e in events if e["__typename"] == "MaterializationEvent"]


START_SENSOR = """
mutation Start($selector: SensorSelector!) {
  startSensor(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { status } }
    ... on PythonError { message }
  }
}
"""
RUNS_BY_TAG = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter) { ... on Runs { results { runId status } } }
}
"""


def test_file_sensor_switched_on_in_the_ui_runs_the_returns_pipeline(
    dagster_dev: DagsterGraphQLClient,
) -> None:
    """As a user does: switch `returns_new_files` on, drop a return slip in the inbox."""
    done = dagster_dev._execute(
        RUNS_BY_TAG, {"filter": {"pipelineName": "retail_assets", "statuses": ["SUCCESS"]}}
    )["runsOrError"]["results"]
    if not done:  # return_rates reads retail's enriched_orders: materialize retail first
        assert _wait(dagster_dev, dagster_dev.submit_job_execution("retail_assets"), 420) == (
            "SUCCESS"
        )
    selector = {
        "repositoryLocationName": "definitions",
        "repositoryName": "__repository__",
        "sensorName": "returns_new_files",
    }
    started = dagster_dev._execute(START_SENSOR, {"selector": selector})["startSensor"]
    assert started["__typename"] == "Sensor", started
    assert started["sensorState"]["status"] == "RUNNING"

    inbox = DEV_DIRS["inbox"]
    inbox.mkdir(parents=True, exist_ok=True)
    part = inbox / "slip.csv.part"
    part.write_text("order_id,product_id,quantity,reason\n1,14,1,damaged\n")
    os.utime(part, (time.time() - 60, time.time() - 60))  # settled
    part.rename(inbox / "slip.csv")

    tag = {"key": "dagster/sensor_name", "value": "returns_new_files"}
    deadline = time.monotonic() + 240  # the sensor ticks every 30 s, then the run
    runs: list[dict[str, str]] = []
    while time.monotonic() < deadline and not runs:
        runs = dagster_dev._execute(RUNS_BY_TAG, {"filter": {"tags": [tag]}})["runsOrError"][
            "results"
        ]
        time.sleep(1)
    assert runs, "the sensor requested no run:\n" + DEV_DIRS["log"].read_text()[-4000:]
    assert _wait(dagster_dev, runs[0]["runId"], 300) == "SUCCESS"


RUN_MATERIALIZATIONS = """
query RunMaterializations($runId: ID!) {
  logsForRun(runId: $runId) {
    ... on EventConnection {
      events {
        ... on MaterializationEvent {
          assetKey { path }
          metadataEntries { label ... on BoolMetadataEntry { boolValue } }
        }
      }
    }
  }
}
"""

STALENESS = "query { assetNodes { assetKey { path } staleStatus } }"

RELOAD = """
mutation { reloadRepositoryLocation(repositoryLocationName: "definitions") { __typename } }
"""


def _cached(client: DagsterGraphQLClient, run_id: str) -> dict[str, bool]:
    events = client._execute(RUN_MATERIALIZATIONS, {"runId": run_id})["logsForRun"]["events"]
    return {
        "/".join(e["assetKey"]["path"]): next(
            m["boolValue"] for m in e["metadataEntries"] if m["label"] == "pysetl/cached"
        )
        for e in events
        if e.get("assetKey")
    }


def _stale(client: DagsterGraphQLClient) -> dict[str, str]:
    nodes = client._execute(STALENESS)["assetNodes"]
    return {"/".join(n["assetKey"]["path"]): n["staleStatus"] for n in nodes}


def _materialize_retail(client: DagsterGraphQLClient) -> dict[str, bool]:
    """Run `retail_assets` as the UI's Materialize all does; which assets it reused."""
    run_id = client.submit_job_execution("retail_assets")
    assert _wait(client, run_id, 300) == "SUCCESS"
    return _cached(client, run_id)


RETAIL = [
    "clean_customers", "clean_orders", "clean_products", "enriched_orders",
    "revenue_by_country", "customer_lifetime_value", "top_products",
]  # fmt: skip


def test_ui_second_run_is_cached_and_an_edit_reruns_only_that_factory(
    dagster_dev: DagsterGraphQLClient,
) -> None:
    """Runs after test_ui_materializes_the_pipeline: materializing again reuses every stored
    version; the UI's staleness agrees; editing TopProducts re-runs it alone."""
    cached = _materialize_retail(dagster_dev)
    assert {k: cached[k] for k in RETAIL} == dict.fromkeys(RETAIL, True)
    assert {k: _stale(dagster_dev)[k] for k in RETAIL} == dict.fromkeys(RETAIL, "FRESH")

    factories = dagster_dev.project / "definitions" / "retail" / "factories.py"  # type: ignore[attr-defined]
    factories.write_text(
        factories.read_text()
        + "\n\n_top_process = TopProducts.process\n\n\n"
        + "def _edited_process(self):  # an edit of TopProducts\n"
        + "    return _top_process(self)\n\n\n"
        + "TopProducts.process = _edited_process\n"
    )
    reloaded = dagster_dev._execute(RELOAD)["reloadRepositoryLocation"]
    assert reloaded["__typename"] == "WorkspaceLocationEntry", reloaded
    stale = _stale(dagster_dev)
    assert stale["top_products"] == "STALE"
    assert stale["enriched_orders"] == "FRESH"

    cached = _materialize_retail(dagster_dev)
    assert [k for k in RETAIL if not cached[k]] == ["top_products"]


def _observe(client: DagsterGraphQLClient, *keys: str) -> None:
    """What the UI's "Observe sources" launches: the observation of these source assets."""
    run_id = _launch_selection(client, assets=[{"path": [k]} for k in keys])
    assert _wait(client, run_id, 240) == "SUCCESS"


def test_ui_observing_a_changed_input_file_marks_its_factory_stale(
    dagster_dev: DagsterGraphQLClient,
) -> None:
    """External inputs are observable sources: after orders.csv changes and is observed, the
    UI shows CleanOrders stale (it was fresh), and the next run recomputes it."""
    _observe(dagster_dev, "orders_csv", "customers_csv")
    _materialize_retail(dagster_dev)
    assert _stale(dagster_dev)["clean_orders"] == "FRESH"

    orders = dagster_dev.project / "definitions" / "data" / "orders.csv"  # type: ignore[attr-defined]
    st = orders.stat()
    os.utime(orders, ns=(st.st_atime_ns, st.st_mtime_ns + 5 * 10**9))  # rewritten in place
    _observe(dagster_dev, "orders_csv", "customers_csv")
    stale = _stale(dagster_dev)
    assert stale["clean_orders"] == "STALE"
    assert stale["clean_customers"] == "FRESH"

    cached = _materialize_retail(dagster_dev)
    assert not cached["clean_orders"] and cached["clean_customers"]
    assert _stale(dagster_dev)["clean_orders"] == "FRESH"


TICKS = """
query Ticks($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { ticks(limit: 5) { status skipReason runIds error { message } } } }
  }
}
"""
RUN_TAGS = """
query RunTags($runId: ID!) { runOrError(runId: $runId) { ... on Run { tags { key value } } } }
"""
TERMINATE = """
mutation Terminate($runId: String!) { terminateRun(runId: $runId) { __typename } }
"""
STOP_SENSOR = """
mutation Stop($id: String!) { stopSensor(id: $id) { __typename } }
"""


def test_branching_sensor_decision_is_visible_in_the_tick_history(
    dagster_dev: DagsterGraphQLClient,
) -> None:
    """Switch `review_branching` on as a user does; its first tick says what it decided and why:
    `large_order_alerts` does not run (no stored `large_orders`), `category_revenue` takes the
    full path ($REVIEW_INCREMENTAL unset). With retail's `enriched_orders` stored (an earlier
    test materialized it) the tick requests a run carrying the decision; without, it skips
    saying what is missing."""
    retail_done = dagster_dev._execute(
        RUNS_BY_TAG, {"filter": {"pipelineName": "retail_assets", "statuses": ["SUCCESS"]}}
    )["runsOrError"]["results"]
    selector = {
        "repositoryLocationName": "definitions",
        "repositoryName": "__repository__",
        "sensorName": "review_branching",
    }
    started = dagster_dev._execute(START_SENSOR, {"selector": selector})["startSensor"]
    assert started["__typename"] == "Sensor", started
    deadline = time.monotonic() + 180
    ticks: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        sensor = dagster_dev._execute(TICKS, {"selector": selector})["sensorOrError"]
        ticks = [t for t in sensor["sensorState"]["ticks"] if t["status"] != "STARTED"]
        if ticks:
            break
        time.sleep(0.5)
    assert ticks, "no tick of review_branching:\n" + DEV_DIRS["log"].read_text()[-4000:]
    tick = ticks[0]
    if not retail_done:
        assert tick["status"] == "SKIPPED", tick
        assert "enriched_orders, which has no stored version yet" in tick["skipReason"]
        assert "LargeOrderAlerts: does not run" in tick["skipReason"]
        return
    assert tick["status"] == "SUCCESS", tick
    (run_id,) = tick["runIds"]
    try:
        tags = {
            t["key"]: t["value"]
            for t in dagster_dev._execute(RUN_TAGS, {"runId": run_id})["runOrError"]["tags"]
        }
        assert tags["pysetl/branch_taken"] == "CategoryRevenue -> AllCategoryRevenue"
        assert tags["pysetl/condition.large_order_alerts"].startswith(
            "false: when_data(LargeOrders, rows > 0): LargeOrders has no stored version yet"
        )
        assert tags["pysetl/condition.category_revenue"].startswith(
            "false: when_config('incremental'): sensor flag incremental is None"
        )
        _look_at_the_decision_in_a_browser(dagster_dev, run_id)
    finally:  # the decision is what is under test, not the run: stop both
        dagster_dev._execute(TERMINATE, {"runId": run_id})
        state_id = dagster_dev._execute(
            "query S($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector)"
            " { ... on Sensor { sensorState { id } } } }",
            {"selector": selector},
        )["sensorOrError"]["sensorState"]["id"]
        dagster_dev._execute(STOP_SENSOR, {"id": state_id})


def _look_at_the_decision_in_a_browser(client: DagsterGraphQLClient, run_id: str) -> None:
    """What an operator sees in the UI (Debian's Chromium through Playwright): the sensor's
    tick history lists the tick and the run it requested, and that run's page shows the
    decision tags."""
    from playwright.sync_api import expect, sync_playwright

    from tests.e2e.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{client._port_number}"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            page.set_default_timeout(60_000)
            skip = page.get_by_role("button", name="Skip")  # Dagster's one-time dialog
            page.add_locator_handler(skip, lambda locator: locator.click())
            page.goto(f"{url}/locations/definitions/sensors/review_branching")
            expect(page.get_by_text("review_branching").first).to_be_visible(timeout=60_000)
            # the tick history links the run the tick requested (by its id's first characters)
            expect(page.get_by_text(run_id[:8]).first).to_be_visible(timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "sensor-tick-history.png"))
            page.goto(f"{url}/runs/{run_id}")
            expect(page.get_by_text(run_id[:8]).first).to_be_visible(timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "sensor-run-page.png"))
            # the run's header shows a few tags; all of them are behind "View tags and config"
            # (which tags the header shows depends on its width and the tags' order: open the
            # full list whenever one of the decision tags is not in the header)
            more = page.get_by_role("button", name=re.compile(r"tags", re.IGNORECASE))
            expect(page.get_by_text("pysetl/").first.or_(more.first)).to_be_visible(timeout=60_000)
            decision = ("pysetl/branch_taken", "pysetl/condition.large_order_alerts")
            shown = all(page.get_by_text(tag).first.is_visible() for tag in decision)
            if not shown and more.count():
                more.first.click()
            for tag in decision:
                expect(page.get_by_text(tag).last).to_be_visible(timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "sensor-run-decision.png"))
        finally:
            browser.close()


def test_ctrl_c_stops_dagster_dev_and_the_connect_server(dagster_dev: DagsterGraphQLClient) -> None:
    """Last of the module: Ctrl-C (SIGINT to the script's process group, as a terminal sends
    it) stops `dagster dev`, its services and the Spark Connect server; nothing is left."""
    proc = DEV_PROCESS["proc"]
    home = str(DEV_DIRS["home"])
    assert _processes_mentioning(f"{home}/connect-server"), "no Connect server was running"
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=90)
    deadline = time.monotonic() + 30
    while _processes_mentioning(home) and time.monotonic() < deadline:
        time.sleep(0.25)
    assert not _processes_mentioning(home), DEV_DIRS["log"].read_text()[-3000:]
