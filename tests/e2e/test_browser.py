"""The Dagster UI in a real browser: Debian's Chromium driven by Playwright, against the
production stack (webserver + daemon + PostgreSQL). Screenshots go to test-artifacts/browser/.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import ROOT
from tests.fixtures.prod_stack import ProdStack

ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip
RUNS = """
query { runsOrError(filter: {pipelineName: "retail_assets"}) {
  ... on Runs { results { runId status tags { key } } } } }
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        # Playwright gives the browser a new empty profile folder of its own.
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        yield page
    finally:
        page.screenshot(path=str(ARTIFACTS / "last.png"))
        context.close()


def _run_ids(stack: ProdStack) -> dict[str, str]:
    results = stack.graphql(RUNS)["runsOrError"]["results"]
    return {
        r["runId"]: r["status"]
        for r in results
        if not any(t["key"] == "dagster/schedule_name" for t in r["tags"])
    }


def _dismiss_community_dialog(page: Page) -> None:
    """A fresh browser profile gets Dagster's one-time "Join the community" dialog."""
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(state="visible", timeout=10_000)
    except Exception:
        return
    skip.click()


def test_materialize_all_from_the_asset_graph(
    prod_stack: ProdStack, scheduled_run: str, page: Page
) -> None:
    # `scheduled_run` has seen the every-minute schedule work and stopped it.
    assert prod_stack.wait_run(scheduled_run) == "SUCCESS"
    before = set(_run_ids(prod_stack))
    page.goto(f"{prod_stack.url}/locations/retail/jobs/retail_assets")
    _dismiss_community_dialog(page)
    # The example's asset graph: its 7 Factories are the job's assets (the graph draws only
    # the nodes in view, so look for one of them and the count).
    expect(page.get_by_text("View 7 assets").first).to_be_visible()
    expect(page.get_by_text("clean_products", exact=True).first).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "1-asset-graph.png"))

    page.get_by_role("button", name="Materialize all").click()
    deadline = time.monotonic() + 300
    new: dict[str, str] = {}
    while time.monotonic() < deadline:
        new = {k: v for k, v in _run_ids(prod_stack).items() if k not in before}
        if new and all(v in ("SUCCESS", "FAILURE", "CANCELED") for v in new.values()):
            break
        time.sleep(1)
    assert list(new.values()) == ["SUCCESS"], new
    (run_id,) = new
    page.goto(f"{prod_stack.url}/runs/{run_id}")
    expect(page.get_by_text("Success").first).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "2-run-success.png"))

    # An asset's page shows the metadata the IO manager recorded with the materialization.
    page.goto(f"{prod_stack.url}/assets/top_products")
    version = page.get_by_text("pysetl/storage_version").first
    expect(version).to_be_visible()
    version.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "3-asset-metadata.png"))
    # This run found nothing changed since the scheduled run: the stored versions were reused,
    # and the page says so, with the run that computed the data.
    expect(page.get_by_text("pysetl/computed_by_run").first).to_be_visible()

    # The asset's Events tab lists each materialization's metadata: the Spark metrics.
    page.goto(f"{prod_stack.url}/assets/top_products?view=events")
    # the newest one reused the stored version; the oldest (the scheduled run) computed it
    dates = page.get_by_text(re.compile(r"^[A-Z][a-z]{2} \d+, \d+:\d+ [AP]M$"))
    expect(dates.first).to_be_visible()
    # the list on the left, newest first, then the selected event's title: click the oldest
    dates.nth(dates.count() - 2).click()
    expect(page.get_by_text("spark/tasks").first).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "4-asset-events.png"))
    # ... and the Overview's Plots section charts the numeric metadata over materializations
    page.goto(f"{prod_stack.url}/assets/top_products")
    plots = page.get_by_text("Plots", exact=True).first
    plots.scroll_into_view_if_needed()
    if not page.get_by_text("spark/output_records").first.is_visible():
        plots.click()  # the section may start collapsed
    expect(page.get_by_text("spark/output_records").first).to_be_visible()
    page.get_by_text("spark/output_records").first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "5-asset-plots.png"))
