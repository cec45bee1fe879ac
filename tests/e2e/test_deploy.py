"""The production stack (PostgreSQL storage, daemon, webserver, gRPC code server) at work.

The stack is `tests/fixtures/prod_stack.py`'s, shared by the whole session; the example runs
with the `e2e` profile (prod, with local Spark and its schedule every minute).
"""

from __future__ import annotations

import dagster as dg
import psycopg2
import pytest
from pyspark.sql import DataFrame, SparkSession

from pysetl_dagster import SparkParquetIOManager
from tests.conftest import assert_same_data
from tests.fixtures.prod_stack import RUNS, ProdStack


@pytest.fixture(scope="session")
def graphql_run(prod_stack: ProdStack, scheduled_run: str) -> str:
    """A run of the asset job launched through the webserver's GraphQL API, as the UI does."""
    return prod_stack.client().submit_job_execution(
        "retail_assets", repository_location_name="retail", repository_name="__repository__"
    )


def _storage_matches(prod_stack: ProdStack, native_outputs: dict[str, DataFrame]) -> None:
    io = SparkParquetIOManager(base_path=str(prod_stack.storage))
    spark = SparkSession.builder.getOrCreate()
    for key, expected in native_outputs.items():
        stored = spark.read.parquet(str(io.current_version_path(dg.AssetKey([key]))))
        assert_same_data(stored, expected)


def test_schedule_starts_a_run_by_itself(prod_stack: ProdStack, scheduled_run: str) -> None:
    assert prod_stack.wait_run(scheduled_run) == "SUCCESS", prod_stack.procs[
        "code_server"
    ].log.read_text()[-4000:]


def test_run_launched_through_graphql_succeeds_on_postgres(
    prod_stack: ProdStack, graphql_run: str, native_outputs: dict[str, DataFrame]
) -> None:
    assert prod_stack.wait_run(graphql_run) == "SUCCESS", prod_stack.procs[
        "code_server"
    ].log.read_text()[-4000:]
    _storage_matches(prod_stack, native_outputs)
    # The run and its events are rows in PostgreSQL, not files under DAGSTER_HOME.
    env = prod_stack.env
    conn = psycopg2.connect(
        host=env["DAGSTER_PG_HOST"], port=int(env["DAGSTER_PG_PORT"]),
        user=env["DAGSTER_PG_USER"], password=env["DAGSTER_PG_PASSWORD"],
        dbname=env["DAGSTER_PG_DB"],
    )  # fmt: skip
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT status FROM runs WHERE run_id = %s", (graphql_run,))
            assert cur.fetchone() == ("SUCCESS",)
            cur.execute(
                "SELECT count(*) FROM event_logs WHERE run_id = %s "
                "AND dagster_event_type = 'ASSET_MATERIALIZATION'",
                (graphql_run,),
            )
            assert cur.fetchone() == (len(native_outputs),)
    finally:
        conn.close()
    assert not list(prod_stack.home.glob("history/runs*.db"))


def test_run_history_survives_a_webserver_restart(
    prod_stack: ProdStack, graphql_run: str, scheduled_run: str
) -> None:
    assert prod_stack.wait_run(graphql_run) == "SUCCESS"
    prod_stack.restart_webserver()
    runs = prod_stack.graphql(RUNS, {"filter": {"runIds": [graphql_run, scheduled_run]}})
    statuses = {r["runId"]: r["status"] for r in runs["runsOrError"]["results"]}
    assert statuses == {graphql_run: "SUCCESS", scheduled_run: "SUCCESS"}


def test_daemon_pushes_run_metrics_to_the_pushgateway(
    prod_stack: ProdStack, scheduled_run: str, pushgateway: str
) -> None:
    """The profile names a Pushgateway: the daemon's run-status sensor pushes each finished
    run's metrics there by itself."""
    import time

    from tests.spark.test_prometheus_push import pushed_metrics

    assert prod_stack.wait_run(scheduled_run) == "SUCCESS"
    labels = (("dagster_job", "retail_assets"), ("job", "pysetl_dagster"))
    deadline = time.monotonic() + 150  # run-status sensors tick every 30 s
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    while time.monotonic() < deadline:
        samples = pushed_metrics(pushgateway)
        if ("pysetl_run_success", labels) in samples:
            break
        time.sleep(1)
    assert samples.get(("pysetl_run_success", labels)) == 1, prod_stack.procs[
        "daemon"
    ].log.read_text()[-3000:]
    # check results are pushed whether the run computed or reused the stored versions
    checked = {
        dict(k[1])["asset"]
        for k in samples
        if k[0] == "pysetl_asset_check_passed" and dict(k[1])["dagster_job"] == "retail_assets"
    }
    assert {"clean_orders", "clean_products"} <= checked, samples
