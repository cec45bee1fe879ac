"""Branches and A/B variants: exactly one branch materializes, as its condition says, and
its consumers read it; A/B variants are separate assets, run side by side or one by flag."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from pysetl_dagster import PySetlDefinitionError, branch, pysetl_pipeline, when_config
from tests.automation.test_conditions import (
    _current,
    _materialized,
    _skip_observations,
    _step_events,
)
from tests.fixtures.conditions_pipeline import (
    FullDoubled,
    PricingA,
    Squares,
    build_ab_pipeline,
    build_branch_pipeline,
)


def _materializations(instance: dg.DagsterInstance, run_id: str) -> dict[str, dict[str, Any]]:
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    out: dict[str, dict[str, Any]] = {}
    for r in records:
        m = r.event_log_entry.dagster_event.event_specific_data.materialization  # type: ignore[union-attr]
        out[m.asset_key.to_user_string()] = {k: v.value for k, v in m.metadata.items()}
    return out


@pytest.mark.parametrize("surface", ["assets", "stages"])
def test_exactly_one_branch_materializes_as_the_condition_says(
    surface: str, resources: dict[str, Any], tmp_path: Path
) -> None:
    pipeline = pysetl_pipeline(build_branch_pipeline(), name=f"branch_{surface}")
    key = pipeline.translated.factory_specs
    (branch_key,) = [s.key for s in key.values() if "pysetl/branch" in s.metadata]
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        for flag, taken, total in (("true", "IncrementalDoubled", 4), ("false", "FullDoubled", 6)):
            tags = {"pysetl/incremental": flag}
            if surface == "assets":
                result = dg.materialize(
                    pipeline.assets, resources=resources, instance=instance, tags=tags
                )
            else:
                assert pipeline.stage_job is not None
                result = pipeline.stage_job.execute_in_process(
                    resources=resources, instance=instance, tags=tags
                )
            assert result.success
            events = _materializations(instance, result.run_id)
            # one asset for the branch, materialized once, by the chosen alternative
            assert set(events) == {"numbers", "doubled_branch", "total"}
            assert events["doubled_branch"]["pysetl/branch_taken"].startswith(taken)
            assert not _step_events(instance, result.run_id, dg.DagsterEventType.STEP_FAILURE)
            # the consumer read the branch that ran: 2*(2) incremental, 2*(0+1+2) full
            assert _current(resources, dg.AssetKey("total")).collect()[0]["total"] == total
            assert _current(resources, branch_key).count() == (1 if flag == "true" else 3)


def test_branch_alternatives_must_produce_the_same_type() -> None:
    with pytest.raises(PySetlDefinitionError, match=r"Branch Mixed: FullDoubled produces"):
        branch(choose=when_config("x"), then=FullDoubled(), otherwise=Squares(), name="Mixed")


def test_a_branch_code_version_is_the_same_on_every_load() -> None:
    """A branch holds its alternatives as Factory instances, each with a random `uuid`: two
    loads (here, two builds) must still give its asset one code version, or the UI marks it
    changed after every reload and its cache never hits. Editing an alternative changes it."""
    from definitions.retail.pipeline import build_pipeline
    from definitions.review import build_review

    def version() -> str | None:
        review = build_review(pysetl_pipeline(build_pipeline(), name="retail"))
        key = dg.AssetKey("category_revenue")
        (asset,) = [
            a for a in review.assets if isinstance(a, dg.AssetsDefinition) and key in a.keys
        ]
        return asset.code_versions_by_key[key]

    first = version()
    assert first is not None and first == version()


def test_ab_variants_side_by_side_or_one_by_flag(resources: dict[str, Any], tmp_path: Path) -> None:
    pipeline = pysetl_pipeline(build_ab_pipeline(), name="ab")
    a, b = dg.AssetKey("pricing_a"), dg.AssetKey("pricing_b")
    specs = {s.key: s for s in pipeline.translated.factory_specs.values()}
    assert specs[a].tags["pysetl/variant"] == "a" and specs[b].tags["pysetl/variant"] == "b"
    assert pipeline.asset_key(PricingA) == a
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        both = dg.materialize(pipeline.assets, resources=resources, instance=instance)
        assert both.success
        events = _materializations(instance, both.run_id)
        assert {"pricing_a", "pricing_b"} <= set(events)
        # comparable in the UI: the same metadata keys, different rows
        assert set(events["pricing_a"]) == set(events["pricing_b"])
        assert events["pricing_a"]["dagster/row_count"] == 3
        assert events["pricing_b"]["dagster/row_count"] == 2

        only_b = dg.materialize(
            pipeline.assets, resources=resources, instance=instance, tags={"pysetl/pricing": "b"}
        )
        assert only_b.success
        assert _materialized(instance, only_b.run_id) == {"numbers", "pricing_b"}
        assert set(_skip_observations(instance, only_b.run_id)) == {"pricing_a"}


def test_example_review_pipeline_condition_and_branch(
    resources: dict[str, Any], tmp_path: Path
) -> None:
    """The example's `review` pipeline: no large orders skips the alerts; the run tag picks
    the branch; its consumer runs either way."""
    import definitions

    assets = [*definitions.retail.assets, *definitions.review.assets]
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        first = dg.materialize(
            assets,
            resources=resources,
            instance=instance,
            run_config={"ops": {"large_orders": {"config": {"min_amount": 1e12}}}},
            tags={"pysetl/incremental": "true"},
        )
        assert first.success
        events = _materializations(instance, first.run_id)
        assert {"large_orders", "category_revenue", "top_category"} <= set(events)
        assert "large_order_alerts" not in events
        assert set(_skip_observations(instance, first.run_id)) == {"large_order_alerts"}
        assert events["category_revenue"]["pysetl/branch_taken"].startswith("RecentCategoryRevenue")
        recent = _current(resources, dg.AssetKey("category_revenue")).count()

        second = dg.materialize(
            assets, resources=resources, instance=instance, selection="group:review"
        )
        assert second.success
        events = _materializations(instance, second.run_id)
        assert set(events) == {"large_orders", "large_order_alerts", "category_revenue",
                               "top_category"}  # fmt: skip
        assert events["category_revenue"]["pysetl/branch_taken"].startswith("AllCategoryRevenue")
        assert _current(resources, dg.AssetKey("category_revenue")).count() >= recent
