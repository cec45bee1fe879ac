"""No Dagster API that Dagster deprecated is used on the main paths of a run.

Dagster 2.0 removes its deprecated APIs, so a deprecation warning today is a failure tomorrow.
pyproject.toml's `filterwarnings` turns them into errors for the whole suite; this test does
not rely on it: it records every warning of a representative session (partitioned assets
materialized and loaded, a partitioned Stage job whose ops load each other's outputs, a file
sensor's tick and the run it requests, a latest-partition schedule's tick) and names each
Dagster deprecation with the file and line that caused it.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._utils.warnings import SupersessionWarning
from pyspark.sql import SparkSession

from pysetl_dagster import build_definitions, pysetl_pipeline
from tests.fixtures.inbox_pipeline import build_inbox_pipeline, write_csv
from tests.fixtures.partitioned_pipeline import build_daily_pipeline, build_events_pipeline

DAYS = ["2024-01-02", "2024-01-03"]

DAGSTER_USER_WARNING = re.compile(
    r"deprecated|Starting in dagster|will be an error|will be renamed", re.IGNORECASE
)
"""What the deprecations Dagster raises as plain UserWarnings say (the same as pyproject.toml's
filters): `InputContext.upstream_output.<attr>`, `Definitions.get_sensor_def`, ..."""


def dagster_deprecation(w: warnings.WarningMessage) -> bool:
    """Whether `w` is one of Dagster's deprecations (or one of pysetl_dagster's old paths)."""
    text = str(w.message)
    if issubclass(w.category, SupersessionWarning):
        return True
    if issubclass(w.category, DeprecationWarning):
        # dagster_shared.utils.warnings.deprecation_warning, attributed to the caller; and
        # pysetl_dagster/_legacy.py's old import paths
        return "is deprecated and will be removed in" in text or "is deprecated: import" in text
    in_dagster = re.search(r"[/\\]dagster[a-z_]*[/\\]", w.filename) is not None
    return (
        issubclass(w.category, UserWarning)
        and in_dagster
        and bool(DAGSTER_USER_WARNING.search(text))
    )


@contextmanager
def recorded_deprecations() -> Iterator[list[str]]:
    """Every Dagster deprecation warned inside the block, as `file:line: category: message`.

    Recording (rather than raising) keeps the run going, so one failure lists every offender;
    "always" also reports a warning already shown once elsewhere in the session."""
    found: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield found
    found.extend(
        f"{w.filename}:{w.lineno}: {w.category.__name__}: {w.message}"
        for w in caught
        if dagster_deprecation(w)
    )


def test_the_detector_sees_a_dagster_deprecation() -> None:
    """The check below can fail: a deprecated Dagster call is recorded."""
    with recorded_deprecations() as found:
        _ = dg.build_init_resource_context().dagster_run  # deprecated: `context.run`
    assert len(found) == 1 and "InitResourceContext.dagster_run" in found[0], found


def test_a_run_session_uses_no_deprecated_dagster_api(
    spark: SparkSession, resources: dict[str, Any], tmp_path: Path
) -> None:
    inbox_dir = tmp_path / "inbox"
    inbox_dir.mkdir()
    with recorded_deprecations() as found:
        # partitioned assets: each day materialized, a partitioned consumer loads its day, an
        # unpartitioned one loads every stored day
        events = pysetl_pipeline(build_events_pipeline(), name="events")
        for day in DAYS:
            selection = [dg.AssetKey("events"), dg.AssetKey("day_counts")]
            result = dg.materialize(
                events.assets, resources=resources, partition_key=day, selection=selection
            )
            assert result.success
        assert dg.materialize(
            events.assets, resources=resources, selection=[dg.AssetKey("all_days")]
        ).success

        # a partitioned Stage job: each op loads the previous op's output (op inputs)
        daily = pysetl_pipeline(build_daily_pipeline(), name="daily_events")
        defs = build_definitions(daily, resources=resources)
        stages = defs.resolve_job_def("daily_events_stages")
        assert stages.execute_in_process(partition_key=DAYS[1]).success

        # the latest-partition schedule of a daily pipeline, ticked as the daemon does
        daily.latest_partition_schedule(hour_of_day=1)
        defs = build_definitions(daily, resources=resources)
        schedule = defs.resolve_schedule_def("daily_events_latest_partition")
        with dg.instance_for_test() as instance:
            tick_time = datetime(2024, 1, 4, 1, 0, tzinfo=UTC)
            schedule_context = dg.build_schedule_context(
                instance=instance, scheduled_execution_time=tick_time
            )
            (request,) = schedule.evaluate_tick(schedule_context).run_requests or []
        assert request.partition_key == DAYS[1]

        # a file sensor's tick and the run it requests
        inbox = pysetl_pipeline(build_inbox_pipeline(inbox_dir), name="inbox")
        sensor = inbox.on_new_files(inbox_dir, pattern="*.csv", settle_seconds=5)
        defs = build_definitions(inbox, resources=resources)
        with dg.instance_for_test() as instance:
            write_csv(inbox_dir / "a.csv", [("x", 1), ("y", 2)])
            sensor_context = dg.build_sensor_context(instance=instance, definitions=defs)
            (request,) = sensor.evaluate_tick(sensor_context).run_requests or []
            result = defs.resolve_job_def("inbox_assets").execute_in_process(
                instance=instance, asset_selection=request.asset_selection, tags=request.tags
            )
            assert result.success
    assert found == [], "Dagster deprecations used:\n" + "\n".join(found)
