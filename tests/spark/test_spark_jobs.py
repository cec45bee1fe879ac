"""Each Factory's Spark jobs carry a job group and tags, cleared once the Factory is done."""

from __future__ import annotations

from typing import Any

import dagster as dg
from pysetl.workflow import Pipeline, Stage
from pyspark.sql import SparkSession

from pysetl_dagster import pysetl_pipeline
from pysetl_dagster.spark.labels import spark_job_scope
from tests.fixtures.numbers_pipeline import Numbers


def test_job_group_and_tags_are_set_then_cleared(spark: SparkSession) -> None:
    sc = spark.sparkContext
    with spark_job_scope(spark, "asset:run-1", "pysetl Numbers", ["dagster-run-run-1"]):
        assert sc.getLocalProperty("spark.jobGroup.id") == "asset:run-1"
        assert "dagster-run-run-1" in sc.getJobTags()
        spark.range(10).count()
    assert sc.statusTracker().getJobIdsForGroup("asset:run-1")
    assert sc.getLocalProperty("spark.jobGroup.id") is None
    assert "dagster-run-run-1" not in sc.getJobTags()


def test_a_run_labels_its_jobs_with_run_and_asset(
    spark: SparkSession, resources: dict[str, Any]
) -> None:
    class Counted(Numbers):
        def process(self) -> Any:
            super().process()
            self.out.count()  # one Spark job inside the Factory
            return self

    assets = pysetl_pipeline(Pipeline().add_stage(Stage().add_factory(Counted())), name="c").assets
    run_config = {"ops": {"counted": {"config": {"n": 3}}}}
    result = dg.materialize(assets, resources=resources, run_config=run_config)
    assert result.success
    group = f"counted:{result.run_id}"
    assert spark.sparkContext.statusTracker().getJobIdsForGroup(group)
    assert spark.sparkContext.getLocalProperty("spark.jobGroup.id") is None
