"""pandera schemas as asset checks: results, blocking, severity, equivalence with pandera."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pandera.pandas as pdpa
import pytest
from pysetl.workflow import Pipeline, Stage
from pyspark.sql import SparkSession

import definitions
from pysetl_dagster import (
    PySetlDefinitionError,
    SparkParquetIOManager,
    Validation,
    pandera_schema_from_typedspark,
    pysetl_pipeline,
)
from pysetl_dagster.checks.plan import build_check_plan, evaluate, observed_exprs
from pysetl_dagster.spark.labels import asset_scope
from tests.conftest import ROOT
from tests.fixtures.validation_pipeline import (
    BAD_COUNTS,
    BAD_ROWS,
    COLUMNS,
    WARN_CHECKS,
    custom_schema,
    people_factories,
    person_schema,
    variant_config,
)


def _assets(validation: Validation | None, name: str) -> tuple[list[Any], Any]:
    people, consumer = people_factories(validation)
    pipeline = (
        Pipeline().add_stage(Stage().add_factory(people)).add_stage(Stage().add_factory(consumer))
    )
    defs = pysetl_pipeline(pipeline, name=name)
    return defs.assets, defs


def _evaluations(result: Any) -> dict[str, Any]:
    return {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def _materialized(result: Any) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def test_valid_output_passes_every_check(resources: dict[str, Any]) -> None:
    assets, defs = _assets(Validation(person_schema()), "valid")
    result = dg.materialize(assets, resources=resources, run_config=variant_config("good"))
    assert result.success
    evaluations = _evaluations(result)
    expected = {spec.name for spec in defs.translated.check_specs(defs.graph.nodes[0])}
    assert set(evaluations) == expected and len(expected) >= 13
    assert all(e.passed for e in evaluations.values())
    assert _materialized(result) == {"people", "people_count"}


def test_bad_output_lists_every_failure_and_non_blocking_publishes(
    resources: dict[str, Any],
) -> None:
    assets, _ = _assets(Validation(person_schema()), "nonblocking")
    result = dg.materialize(assets, resources=resources, run_config=variant_config("bad"))
    assert result.success  # nothing blocks: published, and downstream ran
    assert _materialized(result) == {"people", "people_count"}
    evaluations = _evaluations(result)
    failed = {name: e for name, e in evaluations.items() if not e.passed}
    assert set(failed) == set(BAD_COUNTS) | WARN_CHECKS
    for name, count in BAD_COUNTS.items():
        meta = failed[name].metadata
        assert meta["failing_rows"].value == count, name
        assert meta["rows"].value == len(BAD_ROWS)
        assert "schema" in meta
        if name != "unique__id":
            assert len(meta["failure_cases"].records) == count, name
    assert failed["email__str_matches"].metadata["failure_cases"].records[0].data == {
        "column": "email",
        "value": "bob-at-example",
    }
    # the dataframe-level rule shows the columns it names, from the failing row
    rule = failed["dataframe__id_not_above_age"].metadata["failure_cases"].records
    assert [r.data for r in rule] == [{"id": "4", "age": "-1"}]
    assert {r.data["id"] for r in failed["unique__id"].metadata["failure_cases"].records} == {"1"}
    # the materialization carries the whole report as one table
    (event,) = [
        e for e in result.get_asset_materialization_events() if e.asset_key.path == ["people"]
    ]
    table = event.materialization.metadata["pysetl/checks"].records
    assert {r.data["check"] for r in table} == set(evaluations)


def test_severity_follows_pandera(resources: dict[str, Any]) -> None:
    assets, _ = _assets(Validation(person_schema()), "severity")
    result = dg.materialize(assets, resources=resources, run_config=variant_config("bad"))
    evaluations = _evaluations(result)
    assert evaluations["age__less_than"].severity == dg.AssetCheckSeverity.WARN
    assert evaluations["age__in_range"].severity == dg.AssetCheckSeverity.ERROR
    assert evaluations["schema__drift"].severity == dg.AssetCheckSeverity.WARN


def test_blocking_failure_keeps_previous_version_and_stops_downstream(
    spark: SparkSession, resources: dict[str, Any], storage: Path
) -> None:
    io: SparkParquetIOManager = resources["io_manager"]
    assets, _ = _assets(Validation(person_schema(), blocking=True), "blocking")
    good = dg.materialize(assets, resources=resources, run_config=variant_config("good"))
    assert good.success
    key = dg.AssetKey("people")
    good_path = io.current_version_path(key)

    bad = dg.materialize(
        assets, resources=resources, run_config=variant_config("bad"), raise_on_error=False
    )
    assert not bad.success
    assert _materialized(bad) == set()  # neither people nor its consumer
    assert io.current_version_path(key) == good_path  # the previous version stays current
    failure = next(e for e in bad.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.step_failure_data.user_failure_data.description)
    assert "Factory People (asset people) failed blocking check(s)" in message
    assert "id__greater_than_or_equal_to: 1 of 4 failing row(s)" in message
    assert "dataframe__id_not_above_age: 1 of 4 failing row(s)" in message
    assert "DataFrameSchema" not in message and "stays current" in message
    assert "people_count" not in {
        e.step_key for e in bad.all_events if e.event_type_value == "STEP_START"
    }
    evaluations = _evaluations(bad)
    rejected = Path(evaluations["email__str_matches"].metadata["rejected_version"].value)
    assert rejected.parent.name == "_rejected"
    assert spark.read.parquet(str(rejected)).count() == len(BAD_ROWS)  # kept for inspection
    assert evaluations["email__str_matches"].blocking
    assert not evaluations["age__less_than"].blocking  # WARN never blocks

    # a consumer run now reads the good version, never the rejected data
    only_consumer = dg.materialize(
        assets, resources=resources, selection="people_count", run_config={}
    )
    assert (
        only_consumer.output_for_node("people_count", "people_count") == 3
    )  # the 3 good rows, not the bad

    fixed = dg.materialize(assets, resources=resources, run_config=variant_config("good"))
    # the fixed input is the good one again: its stored version is reused (the cache), and the
    # rejected bad version never became current
    assert fixed.success and io.current_version_path(key) == good_path
    people = fixed.asset_materializations_for_node("people")[0].metadata
    assert people["pysetl/cached"].value is True


def test_blocking_can_be_chosen_per_check(resources: dict[str, Any]) -> None:
    assets, _ = _assets(Validation(person_schema(), blocking={"country__isin"}), "per_check")
    bad = dg.materialize(
        assets, resources=resources, run_config=variant_config("bad"), raise_on_error=False
    )
    assert not bad.success
    evaluations = _evaluations(bad)
    assert evaluations["country__isin"].blocking
    assert not evaluations["email__str_matches"].blocking


def test_same_failures_and_counts_as_pandera(spark: SparkSession) -> None:
    """Our one-pass evaluation against pandera itself: the same checks fail (pandera's PySpark
    backend) with the same counts (pandera's pandas backend, which counts failure cases)."""
    schema = person_schema()
    df = spark.createDataFrame(BAD_ROWS, COLUMNS)
    plan = build_check_plan(Validation(schema), dg.AssetKey("p"), "People")
    exprs, broken = observed_exprs(plan, df)
    row = df.agg(*exprs).first()
    assert row is not None and not broken
    outcomes = evaluate(plan, df, row.asDict())
    ours = {
        (o.check.column, o.check.check.name if o.check.check else o.check.kind): o.failing_rows
        for o in outcomes
        if not o.passed
        and o.check.kind in {"builtin", "nullable", "unique"}
        and o.check.severity == dg.AssetCheckSeverity.ERROR
    }
    warned = {o.check.name for o in outcomes if not o.passed} - {
        o.check.name for o in outcomes if o.check.severity == dg.AssetCheckSeverity.ERROR
    }
    assert warned == WARN_CHECKS

    with pytest.warns(UserWarning, match=r"failed validation less_than\(120\)"):
        errors = schema.validate(df, lazy=True).pandera.errors
    theirs = set()
    for category in errors.values():
        for entries in category.values():
            for e in entries:
                check = e["check"].split("(")[0]
                column = "id" if check == "unique" else e["column"]
                theirs.add((column, "nullable" if check == "not_nullable" else check))
    # pandera runs the dataframe-level row_check itself too (named by its SQL, on the schema)
    assert ("Person", "id <= age") in theirs
    theirs.remove(("Person", "id <= age"))
    assert set(ours) == theirs
    assert len({name for _, name in theirs}) >= 8  # kinds of check compared

    pandas_schema = pdpa.DataFrameSchema(
        {
            name: pdpa.Column(checks=column.checks, nullable=column.nullable)
            for name, column in schema.columns.items()
        },
        unique=schema.unique,
    )
    # the warning-severity check warns here too (pandera's pandas backend says it this way)
    warning = r"Column 'age' failed element-wise validator number \d+: less_than\(120\)"
    with (
        pytest.warns(pdpa.errors.SchemaWarning, match=warning),
        pytest.raises(pdpa.errors.SchemaErrors) as caught,
    ):
        pandas_schema.validate(df.toPandas(), lazy=True)
    cases = caught.value.failure_cases
    for (column, name), count in ours.items():
        if name == "nullable":
            expected = int(((cases.column == column) & (cases.check == "not_nullable")).sum())
        elif name == "unique":
            expected = int(
                (cases.check == "field_uniqueness").sum()
                + (cases.check == "multiple_fields_uniqueness").sum()
            )
        else:
            expected = int(
                ((cases.column == column) & cases.check.astype(str).str.startswith(name)).sum()
            )
        assert count == expected, (column, name)


def test_custom_checks_fall_back_to_pandera(resources: dict[str, Any]) -> None:
    assets, _ = _assets(Validation(custom_schema()), "custom")
    result = dg.materialize(assets, resources=resources, run_config=variant_config("bad"))
    evaluation = _evaluations(result)["age__non_negative"]
    assert not evaluation.passed
    assert "pandera" in evaluation.metadata["evaluated_by"].value
    good = dg.materialize(assets, resources=resources, run_config=variant_config("good"))
    assert _evaluations(good)["age__non_negative"].passed


def test_schema_only_depth_runs_only_schema_checks(spark: SparkSession, storage: Path) -> None:
    assets, _ = _assets(Validation(person_schema(), depth="schema_only"), "depth")
    resources = {
        "pyspark": __import__("pysetl_dagster").PySparkSessionResource(stop_at_exit=False),
        "io_manager": SparkParquetIOManager(base_path=str(storage)),
    }
    result = dg.materialize(assets, resources=resources, run_config=variant_config("bad"))
    assert set(_evaluations(result)) == {
        "schema__columns",
        "id__not_nullable",
        "score__not_nullable",
        "schema__drift",
    }
    # and globally, through resource config
    assets, _ = _assets(Validation(person_schema()), "depth_global")
    resources["io_manager"] = SparkParquetIOManager(
        base_path=str(storage), validation_depth="data_only"
    )
    result = dg.materialize(assets, resources=resources, run_config=variant_config("bad"))
    assert "schema__columns" not in _evaluations(result)
    assert "email__str_matches" in _evaluations(result)


def test_schema_drift_is_a_warning(resources: dict[str, Any]) -> None:
    schema = person_schema().update_columns({"score": {"checks": []}})
    assets, _ = _assets(Validation(schema), "drift")
    assert dg.materialize(assets, resources=resources, run_config=variant_config("good")).success
    wide = dg.materialize(assets, resources=resources, run_config=variant_config("wide"))
    drift = _evaluations(wide)["schema__drift"]
    assert not drift.passed and drift.severity == dg.AssetCheckSeverity.WARN
    assert "extra added" in drift.metadata["message"].value
    assert "score retyped (double -> float)" in drift.metadata["message"].value
    # a wrong type is an ERROR of the schema check, with the column named
    columns = _evaluations(wide)["schema__columns"]
    assert not columns.passed and columns.severity == dg.AssetCheckSeverity.ERROR
    assert "score: expected DoubleType(), found FloatType()" in columns.metadata["message"].value
    hashes = {
        e.materialization.metadata["pysetl/schema_hash"].value
        for e in wide.get_asset_materialization_events()
        if e.asset_key.path == ["people"]
    }
    assert len(hashes) == 1


def test_stage_job_logs_check_evaluations(resources: dict[str, Any]) -> None:
    _, defs = _assets(Validation(person_schema(), blocking=True), "stagejob")
    job = defs.stage_job
    result = job.execute_in_process(
        resources=resources,
        run_config={"ops": {"stagejob__stage_0": {"config": {"people": {"variant": "bad"}}}}},
        raise_on_error=False,
    )
    assert not result.success
    evaluations = _evaluations(result)
    assert not evaluations["email__str_matches"].passed
    assert "stagejob__stage_1" not in {
        e.step_key for e in result.all_events if e.event_type_value == "STEP_START"
    }


def test_typedspark_schemas_of_the_example_convert(native_outputs: dict[str, Any]) -> None:
    """Every example Factory gets a pandera schema from its typedspark Schema; the native
    outputs pass it (column presence and every Spark type the example uses)."""
    from pandera.engines.pyspark_engine import Engine

    seen_types = set()
    for node, spec in definitions.retail.translated.factory_specs.items():
        plan = definitions.retail.translated.check_plans[node]
        df = native_outputs[spec.key.to_user_string()]
        outcome = next(
            o for o in evaluate(plan, df, {"__rows": 0}) if o.check.name == "schema__columns"
        )
        assert outcome.passed, (spec.key, outcome.message)
        schema = pandera_schema_from_typedspark(node.payload_type._schema_annotations)
        for field in df.schema.fields:
            assert schema.columns[field.name].dtype == Engine.dtype(field.dataType)
            seen_types.add(field.dataType.typeName())
    assert {"long", "string", "date", "integer", "decimal"} <= seen_types


def test_a_schema_that_is_not_one_is_a_load_error() -> None:
    people, _ = people_factories(Validation(json))
    with pytest.raises(PySetlDefinitionError, match=r"Factory People: its validation schema"):
        pysetl_pipeline(Pipeline().add_stage(Stage().add_factory(people)), name="broken")


def test_checks_run_alone_against_stored_output(
    spark: SparkSession, resources: dict[str, Any]
) -> None:
    assets, _ = _assets(Validation(person_schema()), "alone")
    assert dg.materialize(assets, resources=resources, run_config=variant_config("bad")).success
    key = dg.AssetCheckKey(dg.AssetKey("people"), "email__str_matches")
    result = dg.materialize(
        assets, resources=resources, selection=dg.AssetSelection.checks(key), run_config={}
    )
    assert result.success and _materialized(result) == set()
    (evaluation,) = _evaluations(result).values()
    assert evaluation.check_name == "email__str_matches" and not evaluation.passed
    assert evaluation.metadata["failing_rows"].value == 1


def test_example_blocks_a_broken_product_feed(resources: dict[str, Any]) -> None:
    """The README's demo: a product priced 249,000.00 stops at clean_products."""
    from definitions.retail.pipeline import build_pipeline

    bad = pysetl_pipeline(build_pipeline(ROOT / "definitions" / "data_bad"), name="retail_bad")
    result = dg.materialize(bad.assets, resources=resources, raise_on_error=False)
    assert not result.success
    failed = {
        (e.asset_key.to_user_string(), e.check_name)
        for e in _evaluations_list(result)
        if not e.passed
    }
    assert failed == {("clean_products", "unit_price__in_range")}
    assert "clean_products" not in _materialized(result)
    assert "enriched_orders" not in _materialized(result)


def _evaluations_list(result: Any) -> list[Any]:
    return [
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]


def test_checks_cost_at_most_two_spark_jobs(spark: SparkSession) -> None:
    """Counted by Spark's status tracker: whatever the number of checks, evaluating them on a
    stored version takes one fused query: two jobs with uniqueness (its shuffle's map stage
    and the result), on valid data as on data failing nearly every check."""
    from tests.fixtures.validation_pipeline import GOOD_ROWS

    plan = build_check_plan(Validation(person_schema()), dg.AssetKey("p"), "People")
    assert sum(c.row_level for c in plan.checks) >= 12
    tracker = spark.sparkContext.statusTracker()
    for variant, data in (("good", GOOD_ROWS), ("bad", BAD_ROWS)):
        df = spark.createDataFrame(data, COLUMNS)
        exprs, broken = observed_exprs(plan, df)
        assert len(exprs) == 2  # observed during the write: rows and rows failing any check
        with asset_scope(spark, f"checks-cost-{variant}", "p", "asset checks"):
            outcomes = evaluate(plan, df, {"__rows": len(data)}, broken=broken)
        assert len(tracker.getJobIdsForGroup(f"p:checks-cost-{variant}")) <= 2, variant
        assert all(o.passed for o in outcomes) == (variant == "good")


def test_nan_follows_pandera_pyspark_or_is_null_when_asked(spark: SparkSession) -> None:
    """NaN, by default, as pandera's PySpark backend sees it (a value above every number: it
    fails `le`, passes `ge`, is not null); with `nan_is_null` as pandas sees it (a null: it
    fails `not_nullable` and passes value checks). Counts compared with pandas' backend."""
    import pandera.pyspark as pa
    import pyspark.sql.types as T

    df = spark.createDataFrame([(1.0,), (float("nan"),), (150.0,), (None,)], "score double")

    def schema(**metadata: Any) -> Any:
        return pa.DataFrameSchema(
            {
                "score": pa.Column(
                    T.DoubleType(),
                    [pa.Check.le(100.0), pa.Check.ge(0.0)],
                    nullable=False,
                    metadata=metadata or None,
                )
            }
        )

    def counts(validation: Validation) -> dict[str, int | None]:
        plan = build_check_plan(validation, dg.AssetKey("s"), "Scores")
        outcomes = evaluate(plan, df, {})
        return {o.check.name: o.failing_rows for o in outcomes if o.check.row_level}

    spark_semantics = counts(Validation(schema()))
    assert spark_semantics == {
        "score__not_nullable": 1,
        "score__less_than_or_equal_to": 2,  # 150 and NaN
        "score__greater_than_or_equal_to": 0,
    }
    errors = schema().validate(df, lazy=True).pandera.errors  # pandera's PySpark verdicts
    failed_by_pandera = {
        e["check"].split("(")[0]
        for category in errors.values()
        for entries in category.values()
        for e in entries
    }
    assert failed_by_pandera == {"not_nullable", "less_than_or_equal_to"}

    as_null = counts(Validation(schema(), nan_is_null={"score"}))
    assert as_null == counts(Validation(schema(nan_is_null=True)))  # per column, either way
    pandas_schema = pdpa.DataFrameSchema(
        {"score": pdpa.Column(float, [pdpa.Check.le(100.0), pdpa.Check.ge(0.0)])}
    )
    with pytest.raises(pdpa.errors.SchemaErrors) as caught:
        pandas_schema.validate(df.toPandas(), lazy=True)
    cases = caught.value.failure_cases
    assert as_null == {
        "score__not_nullable": int((cases.check == "not_nullable").sum()),  # None and NaN: 2
        "score__less_than_or_equal_to": int(cases.check.str.startswith("less_than").sum()),
        "score__greater_than_or_equal_to": 0,
    }
    assert as_null["score__not_nullable"] == 2 and as_null["score__less_than_or_equal_to"] == 1
