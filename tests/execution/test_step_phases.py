"""The Factory step's phases, each run on a real `StepState` (real contexts, a real
SparkSession, real versioned storage): decide (condition, cache), compute, store and audit,
publish or reject."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import dagster as dg
import pandera.pyspark as pa
import pyspark.sql.types as T
import pytest
from pysetl.workflow import Factory, Pipeline, Stage
from pyspark.sql import SparkSession
from typedspark import DataSet

from pysetl_dagster import (
    PySparkSessionResource,
    SparkParquetIOManager,
    Validation,
    pysetl_pipeline,
    when_config,
)
from pysetl_dagster.execution.decide import (
    decide_branch,
    decide_cache,
    decide_skip,
    gather_inputs,
    reusable,
)
from pysetl_dagster.execution.state import StepState
from pysetl_dagster.execution.step import compute, publish, store_and_audit
from pysetl_dagster.translation.specs import TranslatedPipeline
from tests.fixtures.numbers_pipeline import NumberRow, Numbers, build_numbers_pipeline


class GatedNumbers(Numbers):
    """Numbers, only when the run says `pysetl/numbers_on`."""

    condition = when_config("numbers_on", default=False)


class Negatives(Factory[DataSet[NumberRow]]):
    """-1, -2, -3: fails a `value >= 0` check."""

    validation = Validation(
        pa.DataFrameSchema({"value": pa.Column(T.LongType(), pa.Check.ge(0))}), blocking=True
    )

    def read(self) -> Self:
        return self

    def process(self) -> Self:
        spark = SparkSession.builder.getOrCreate()
        self.out = DataSet[NumberRow](spark.range(1, 4).selectExpr("-id AS value"))
        return self

    def write(self) -> Self:
        return self

    def get(self) -> DataSet[NumberRow]:
        return self.out


def _in_step(
    translated: TranslatedPipeline,
    factory: type,
    resources: dict[str, Any],
    phases: Callable[[StepState], Any],
    *,
    tags: dict[str, str] | None = None,
    config: Any = None,
) -> Any:
    """Run `phases` on the Factory's `StepState` inside a real op of a real run (the state
    reads the run's id and tags from its context); return what `phases` returned or raised."""
    node = next(n for n in translated.graph.nodes if n.factory_type is factory)
    box: dict[str, Any] = {}

    @dg.op(required_resource_keys={"pyspark", "io_manager"})
    def probe(context) -> None:  # type: ignore[no-untyped-def]
        state = StepState.start(
            context,
            translated,
            node,
            {},
            config,
            io_manager_key="io_manager",
            check_keys=None,
            checks_as_events=True,
        )
        try:
            box["result"] = phases(state)
        except Exception as exc:
            box["result"] = exc

    @dg.job(name=f"probe_{translated.graph.name}")
    def probe_job() -> None:
        probe()

    result = probe_job.execute_in_process(resources=resources, tags=tags or {})
    assert result.success
    return box["result"]


@pytest.fixture
def step_resources(spark: SparkSession, tmp_path: Path) -> dict[str, Any]:
    return {
        "pyspark": PySparkSessionResource(stop_at_exit=False),
        "io_manager": SparkParquetIOManager(base_path=str(tmp_path / "storage")),
    }


def _decide_skip(state: StepState) -> str | None:
    gather_inputs(state)
    decide_skip(state)
    decide_branch(state)
    assert state.run_node == state.node  # not a branch: the Factory itself runs
    return state.skip_reason


def _write(state: StepState) -> tuple[StepState, Any]:
    gather_inputs(state)
    decide_cache(state)
    before = reusable(state)
    compute(state)
    list(store_and_audit(state))
    publish(state)
    return state, before


def _decide_cache(state: StepState) -> StepState:
    gather_inputs(state)
    decide_cache(state)
    return state


def test_decide_skips_a_factory_whose_condition_is_false(step_resources: dict[str, Any]) -> None:
    translated = pysetl_pipeline(
        Pipeline().add_stage(Stage().add_factory(GatedNumbers())), name="gated"
    ).translated
    off = _in_step(translated, GatedNumbers, step_resources, _decide_skip, config=Numbers.Config())
    assert isinstance(off, str) and off.startswith("condition false")
    assert "numbers_on" in off
    on = _in_step(
        translated,
        GatedNumbers,
        step_resources,
        _decide_skip,
        tags={"pysetl/numbers_on": "true"},
        config=Numbers.Config(),
    )
    assert on is None


def test_decide_reuses_a_stored_version_until_the_config_changes(
    step_resources: dict[str, Any],
) -> None:
    translated = pysetl_pipeline(build_numbers_pipeline(), name="phases").translated
    first, before = _in_step(
        translated, Numbers, step_resources, _write, config=Numbers.Config(n=3)
    )
    assert first.cache is not None and before is None  # nothing stored yet
    assert first.value.published
    assert first.storage is not None
    current = first.storage.current_manifest(first.key)
    assert current is not None and current["version"] == first.value.version

    same = _in_step(translated, Numbers, step_resources, _decide_cache, config=Numbers.Config(n=3))
    decision = reusable(same)
    assert decision is not None and decision.reuse is not None
    assert decision.reuse["version"] == first.value.version

    changed = _in_step(
        translated, Numbers, step_resources, _decide_cache, config=Numbers.Config(n=4)
    )
    assert reusable(changed) is None
    assert changed.cache is not None and "config" in changed.cache.reason


def test_store_and_audit_rejects_a_version_that_fails_a_blocking_check(
    step_resources: dict[str, Any],
) -> None:
    translated = pysetl_pipeline([Negatives()], name="negatives").translated
    events: list[Any] = []

    def store(state: StepState) -> StepState:
        gather_inputs(state)
        compute(state)
        try:
            for event in store_and_audit(state):
                events.append(event)
        except dg.Failure as failure:
            state.metadata["failure"] = failure
        return state

    state = _in_step(translated, Negatives, step_resources, store)
    failure = state.metadata["failure"]
    assert "Negatives (asset negatives) failed blocking check" in failure.description
    # the results are emitted before the step fails
    assert [e.check_name for e in events] == [o.check.name for o in state.outcomes]
    failed = [o for o in state.outcomes if not o.passed]
    assert [o.check.name for o in failed] == ["value__greater_than_or_equal_to"]
    assert failed[0].failing_rows == 3
    storage = state.storage
    assert storage is not None and state.stored is not None
    assert storage.current_manifest(state.key) is None  # nothing was published
    rejected = Path(str(storage.asset_dir(state.key))) / "_rejected" / state.stored.version
    assert rejected.is_dir()
