"""Click to SUCCESS in the UI: *Materialize all* on `retail_assets`, as a user does it.

Starts `scripts/dev` (the quick start's first command) on a free port with a fresh Dagster home
and storage, opens the job's page in headless Chromium (Playwright, the Debian Chromium the
tests use), clicks *Materialize all*, and times the click to the run's SUCCESS (the run's end
time, read over GraphQL). Twice per mode: cold (empty storage: every Factory computes) and warm
(nothing changed: every Factory is a cache hit, Spark runs no job). Modes: Spark Connect
(`scripts/dev`, the default) and the classic in-process session (`scripts/dev --classic`),
side by side in one run (`default_launcher`, a third mode: Connect with Dagster's
`DefaultRunLauncher`, a fresh interpreter per run, instead of scripts/dev's warm run launcher;
its keys are prefixed `default_launcher_`). Each run's timeline (queued, launched, started,
first step, end) is printed too, to see where the time goes.

The last line is one JSON object: {"cold_s", "warm_s", "classic_cold_s", "classic_warm_s"}.

    .venv/bin/python benchmarks/ui_latency.py [--modes connect classic default_launcher] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# the browser and its flags are the browser test's: one place says how Chromium runs here
from tests.e2e.test_browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

RUNS = """
query { runsOrError(filter: {pipelineName: "retail_assets"}) {
  ... on Runs { results { runId status creationTime startTime endTime } } } }
"""
EVENTS = """
query Events($runId: ID!) { logsForRun(runId: $runId) { ... on EventConnection {
  events { __typename ... on MessageEvent { timestamp stepKey message } } } } }
"""
#: The run's milestones: (name, event type, message prefix or None).
MILESTONES = [
    ("launched", "EngineEvent", "Started process for run"),
    ("run_started", "RunStartEvent", None),
    ("resources_ready", "ResourceInitSuccessEvent", None),
    ("first_step", "ExecutionStepStartEvent", None),
    ("last_step_done", "ExecutionStepSuccessEvent", None),
]
LOCATION = """
query { workspaceOrError { ... on Workspace { locationEntries { name
  locationOrLoadError { __typename } } } } }
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _graphql(port: int, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    import urllib.request

    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        data: dict[str, Any] = json.load(response)["data"]
    return data


@contextmanager
def dev_server(work: Path, classic: bool, default_launcher: bool = False) -> Iterator[int]:
    """`scripts/dev` on a free port with its own Dagster home and storage; stopped as a user
    stops it (Ctrl-C to the process group), killed if it does not go. `default_launcher`:
    the home's dagster.yaml names Dagster's `DefaultRunLauncher` (a fresh interpreter per run)
    instead of the warm run launcher scripts/dev configures."""
    port = _free_port()
    home = work / "home"
    home.mkdir(parents=True, exist_ok=True)  # scripts/dev writes its dagster.yaml, as for a user
    if default_launcher:
        (home / "dagster.yaml").write_text(
            "telemetry:\n  enabled: false\nrun_launcher:\n"
            "  module: dagster._core.launcher\n  class: DefaultRunLauncher\n"
        )
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PYSETL_DAGSTER_STORAGE": str(work / "storage"),
        "RETAIL_INBOX": str(work / "inbox"),
    }
    args = [str(ROOT / "scripts" / "dev"), "--port", str(port)]
    if classic:
        args.insert(1, "--classic")
    log = open(work / "dev.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                entries = _graphql(port, LOCATION)["workspaceOrError"]["locationEntries"]
                if entries and all(
                    e["locationOrLoadError"]
                    and e["locationOrLoadError"]["__typename"] == "RepositoryLocation"
                    for e in entries
                ):
                    break
            except Exception:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "scripts/dev did not come up:\n" + (work / "dev.log").read_text()[-3000:]
                )
            time.sleep(1)
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _dismiss_community_dialog(page: Any) -> None:
    """A fresh browser profile gets Dagster's one-time "Join the community" dialog, a few
    seconds after the first page load: wait for it once and skip it (and should it come later,
    Playwright skips it before any click)."""
    skip = page.get_by_role("button", name="Skip")
    page.add_locator_handler(skip, lambda locator: locator.click())
    try:
        skip.wait_for(state="visible", timeout=20_000)
        skip.click(timeout=5_000)
    except Exception:
        return  # no dialog, or the handler above skipped it first


def click_to_success(page: Any, port: int) -> dict[str, Any]:
    """Click *Materialize all* on the job page; seconds from the click to the run's end."""
    before = {r["runId"] for r in _graphql(port, RUNS)["runsOrError"]["results"]}
    page.goto(f"http://127.0.0.1:{port}/locations/definitions/jobs/retail_assets")
    button = page.get_by_role("button", name="Materialize all")
    button.wait_for(state="visible", timeout=120_000)
    page.wait_for_timeout(500)  # the graph settles; a click before that is lost
    clicked = time.time()
    try:
        button.click()
    except Exception:
        page.screenshot(path=str(Path(tempfile.gettempdir()) / "ui_latency_failed_click.png"))
        raise
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        runs = [
            r for r in _graphql(port, RUNS)["runsOrError"]["results"] if r["runId"] not in before
        ]
        if runs and runs[0]["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            run = runs[0]
            break
        time.sleep(0.2)
    else:
        raise RuntimeError("the run did not finish within 600 s")
    if run["status"] != "SUCCESS":
        raise RuntimeError(f"run {run['runId']} ended {run['status']}")
    events = _graphql(port, EVENTS, {"runId": run["runId"]})["logsForRun"]["events"]
    timeline: dict[str, float] = {"created": round(run["creationTime"] - clicked, 2)}
    for name, typename, prefix in MILESTONES:
        times = [
            int(e["timestamp"]) / 1000
            for e in events
            if e["__typename"] == typename
            and (prefix is None or str(e.get("message", "")).startswith(prefix))
        ]
        if times:
            pick = max if name == "last_step_done" else min
            timeline[name] = round(pick(times) - clicked, 2)
    timeline["end"] = round(run["endTime"] - clicked, 2)
    return {"run_id": run["runId"], "seconds": timeline["end"], "timeline": timeline}


def measure(mode: str, keep: bool) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix=f"ui_latency_{mode}_"))
    try:
        with (
            dev_server(
                work, classic=mode == "classic", default_launcher=mode == "default_launcher"
            ) as port,
            sync_playwright() as p,
        ):
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            page.set_default_timeout(60_000)
            page.goto(f"http://127.0.0.1:{port}/locations/definitions/jobs/retail_assets")
            _dismiss_community_dialog(page)
            cold = click_to_success(page, port)
            warm = click_to_success(page, port)
            browser.close()
        print(json.dumps({"mode": mode, "cold": cold, "warm": warm}), flush=True)
        return {"cold_s": cold["seconds"], "warm_s": warm["seconds"]}
    finally:
        if keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["connect", "classic"],
        choices=["connect", "classic", "default_launcher"],
        help="default_launcher: Connect with Dagster's DefaultRunLauncher instead of the warm one",
    )
    parser.add_argument("--keep", action="store_true", help="keep the Dagster homes and logs")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a cheap run (benchmarks/regression.py): --modes classic",
    )
    args = parser.parse_args()
    if args.quick:
        args.modes = ["classic"]
    result: dict[str, float] = {}
    for mode in args.modes:
        figures = measure(mode, args.keep)
        prefix = "" if mode == "connect" else f"{mode}_"
        result.update({prefix + k: v for k, v in figures.items()})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
