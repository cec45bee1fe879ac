"""`pysetl_dagster.testing`: one Factory on given DataFrames, a pipeline selection
materialized into a temporary instance and storage, DataFrame equality with a readable diff."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from pysetl_dagster import PySetlStorageError, pysetl_pipeline
from pysetl_dagster.testing import assert_frame_equal, materialize_pipeline, run_factory
from tests.fixtures.numbers_pipeline import (
    Doubled,
    DoubledRow,
    NumberRow,
    Numbers,
    build_numbers_pipeline,
)


def test_run_factory_runs_one_factory_on_given_dataframes(spark: SparkSession) -> None:
    numbers = spark.createDataFrame([(3,), (1,), (2,)], NumberRow.get_structtype())

    doubled = run_factory(Doubled, {"numbers": numbers})

    expected = spark.createDataFrame([(1, 2), (2, 4), (3, 6)], DoubledRow.get_structtype())
    assert_frame_equal(doubled, expected)  # order-insensitive
    assert run_factory(Numbers, config={"n": 4}).count() == 4  # its nested Config
    with pytest.raises(KeyError, match=r"Deliveries \['numbers'\]; missing \['numbers'\]"):
        run_factory(Doubled, {})


def test_assert_frame_equal_shows_the_first_differing_rows_and_schema(
    spark: SparkSession,
) -> None:
    schema = DoubledRow.get_structtype()
    actual = spark.createDataFrame([(1, 2), (2, 5), (2, 5)], schema)
    expected = spark.createDataFrame([(1, 2), (2, 4), (2, 5)], schema)
    with pytest.raises(AssertionError) as rows:
        assert_frame_equal(actual, expected)
    assert str(rows.value) == (
        "DataFrames differ in rows (order ignored):\n"
        "  only in actual (1 row(s)):\n"
        "    (2, 5)\n"
        "  only in expected (1 row(s)):\n"
        "    (2, 4)"
    )
    with pytest.raises(AssertionError, match="only in actual: doubled bigint"):
        assert_frame_equal(actual, actual.select("value"))
    assert_frame_equal(expected.orderBy("doubled", ascending=False), expected)


def test_materialize_pipeline_runs_a_selection_into_temporary_storage(
    spark: SparkSession,
) -> None:
    pipeline = pysetl_pipeline(build_numbers_pipeline(), name="numbers")
    with materialize_pipeline(
        pipeline,
        selection=[Numbers, "doubled"],
        run_config={"ops": {"numbers": {"config": {"n": 2}}}},
    ) as run:
        assert run.result.success
        materialized = {
            e.asset_key.to_user_string() for e in run.result.get_asset_materialization_events()
        }
        assert materialized == {"numbers", "doubled"}  # not total: outside the selection
        assert_frame_equal(
            run.output("doubled"),
            spark.createDataFrame([(0, 0), (1, 2)], DoubledRow.get_structtype()),
        )
        with pytest.raises(PySetlStorageError, match="Materialize it first"):
            run.output("total")
        storage = Path(run.storage_path)
        assert (storage / "doubled" / "_current.json").exists()
    assert not storage.exists()  # the temporary storage is gone with the run
