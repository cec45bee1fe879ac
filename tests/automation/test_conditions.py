"""Conditions: a false condition skips the Factory and what depends on it (never a failure), in
the asset job and in the Stage job; a true one runs them. Real runs, real event logs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from pysetl.workflow import Pipeline, Stage
from pyspark.sql import DataFrame, SparkSession

from pysetl_dagster import (
    PySetlDefinitionError,
    PySetlPipelineDefinitions,
    pysetl_pipeline,
    stage_condition,
    when_config,
    when_data,
)
from tests.fixtures.conditions_pipeline import Squares, SquaresReport, build_conditions_pipeline
from tests.fixtures.numbers_pipeline import Doubled, Numbers, Total

ALL = {"numbers", "gated_doubled", "squares", "total", "squares_report"}


@pytest.fixture(scope="module")
def pipeline() -> PySetlPipelineDefinitions:
    return pysetl_pipeline(build_conditions_pipeline(), name="conditions")


def _events(result: Any, event_type: dg.DagsterEventType) -> list[dg.EventLogEntry]:
    return [
        e
        for e in result._event_list  # type: ignore[attr-defined]
        if e.event_type == event_type
    ]


def _materialized(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    return {
        r.event_log_entry.dagster_event.event_specific_data.materialization.asset_key.to_user_string()  # type: ignore[union-attr]
        for r in records
    }


def _skip_observations(instance: dg.DagsterInstance, run_id: str) -> dict[str, Any]:
    """Asset -> reason of every `pysetl/skipped` observation the run recorded."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_OBSERVATION
    ).records
    found: dict[str, Any] = {}
    for r in records:
        observation = r.event_log_entry.dagster_event.event_specific_data.asset_observation  # type: ignore[union-attr]
        if "pysetl/skipped" in observation.metadata:
            found[observation.asset_key.to_user_string()] = observation.metadata[
                "pysetl/skipped"
            ].value
    return found


def _step_events(instance: dg.DagsterInstance, run_id: str, kind: dg.DagsterEventType) -> set[str]:
    records = instance.get_records_for_run(run_id, of_type=kind).records
    return {r.event_log_entry.step_key or "" for r in records}


def _current(resources: dict[str, Any], key: dg.AssetKey) -> DataFrame:
    io = resources["io_manager"]
    return io.read_version(io.current_version_path(key), io.current_manifest(key)["schema"])


def test_asset_job_skips_false_conditions_and_dependents(
    pipeline: PySetlPipelineDefinitions, resources: dict[str, Any], tmp_path: Path
) -> None:
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        empty = dg.materialize(
            pipeline.assets,
            resources=resources,
            instance=instance,
            run_config={"ops": {"numbers": {"config": {"n": 0}}}},
        )
        assert empty.success
        run_id = empty.run_id
        assert _materialized(instance, run_id) == {"numbers", "squares"}
        assert not _step_events(instance, run_id, dg.DagsterEventType.STEP_FAILURE)
        # the dependent of the skipped Factory is a skipped step, not a failed one
        assert _step_events(instance, run_id, dg.DagsterEventType.STEP_SKIPPED) == {"total"}
        skipped = _skip_observations(instance, run_id)
        assert set(skipped) == {"gated_doubled", "squares_report"}
        assert "when_data(Numbers, rows > 0)" in skipped["gated_doubled"]
        assert "False" in skipped["gated_doubled"]
        assert "pysetl/report" in skipped["squares_report"]

        full = dg.materialize(
            pipeline.assets,
            resources=resources,
            instance=instance,
            run_config={"ops": {"numbers": {"config": {"n": 3}}}},
            tags={"pysetl/report": "true"},
        )
        assert full.success
        assert _materialized(instance, full.run_id) == ALL
        assert not _skip_observations(instance, full.run_id)
        assert not _step_events(instance, full.run_id, dg.DagsterEventType.STEP_SKIPPED)
        assert _current(resources, pipeline.asset_key(SquaresReport)).count() == 2


def test_stage_job_skips_false_conditions_and_dependents(
    pipeline: PySetlPipelineDefinitions,
    resources: dict[str, Any],
    tmp_path: Path,
    spark: SparkSession,
) -> None:
    assert pipeline.stage_job is not None
    stage0 = "conditions__stage_0"
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        empty = pipeline.stage_job.execute_in_process(
            resources=resources,
            instance=instance,
            run_config={"ops": {stage0: {"config": {"numbers": {"n": 0}}}}},
        )
        assert empty.success
        run_id = empty.run_id
        assert _materialized(instance, run_id) == {"numbers", "squares"}
        assert not _step_events(instance, run_id, dg.DagsterEventType.STEP_FAILURE)
        # every Stage op ran (the unconditional Factories of a Stage still run)
        assert _step_events(instance, run_id, dg.DagsterEventType.STEP_SUCCESS) == {
            stage0,
            "conditions__stage_1",
            "conditions__stage_2",
        }
        skipped = _skip_observations(instance, run_id)
        assert set(skipped) == {"gated_doubled", "total", "squares_report"}
        assert "skipped Factories" in skipped["total"]

        full = pipeline.stage_job.execute_in_process(
            resources=resources,
            instance=instance,
            run_config={"ops": {stage0: {"config": {"numbers": {"n": 3}}}}},
            tags={"pysetl/report": "yes"},
        )
        assert full.success
        assert _materialized(instance, full.run_id) == ALL
        assert not _skip_observations(instance, full.run_id)
        # Total read GatedDoubled's output of this run: 2 * (0 + 1 + 2)
        assert _current(resources, pipeline.asset_key(Total)).collect()[0]["total"] == 6


def test_condition_naming_a_missing_factory_is_a_load_time_error() -> None:
    class Ghost(Doubled):
        """Not in the pipeline."""

    class Watching(Numbers):
        condition = when_data(Ghost, lambda df: df["value"].isNotNull().cast("int") > 0)

    pipeline = Pipeline().add_stage(Stage().add_factory(Watching()))
    with pytest.raises(PySetlDefinitionError, match=r"Factory Watching.*Ghost.*not in pipeline"):
        pysetl_pipeline(pipeline, name="ghostly")


def test_condition_on_a_factory_not_consumed_is_a_load_time_error() -> None:
    class GatedOnSquares(Doubled):
        condition = when_data(Squares, lambda df: df["square"].isNotNull().cast("int") > 0)

    pipeline = (
        Pipeline()
        .add_stage(Stage().add_factory(Numbers()))
        .add_stage(Stage().add_factory(Squares()))
        .add_stage(Stage().add_factory(GatedOnSquares()))
    )
    with pytest.raises(PySetlDefinitionError, match=r"GatedOnSquares.*Squares.*does not consume"):
        pysetl_pipeline(pipeline, name="wrong_input")


def test_stage_condition_skips_the_whole_stage_and_what_follows(
    resources: dict[str, Any], tmp_path: Path
) -> None:
    stage = stage_condition(Stage().add_factory(Doubled()), when_config("double"))
    pipeline = pysetl_pipeline(
        Pipeline()
        .add_stage(Stage().add_factory(Numbers()))
        .add_stage(stage)
        .add_stage(Stage().add_factory(Total())),
        name="staged_condition",
    )
    assert pipeline.stage_job is not None
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        off = pipeline.stage_job.execute_in_process(resources=resources, instance=instance)
        assert off.success
        assert _materialized(instance, off.run_id) == {"numbers"}
        assert set(_skip_observations(instance, off.run_id)) == {"doubled", "total"}
        on = pipeline.stage_job.execute_in_process(
            resources=resources, instance=instance, tags={"pysetl/double": "1"}
        )
        assert on.success
        assert _materialized(instance, on.run_id) == {"numbers", "doubled", "total"}
