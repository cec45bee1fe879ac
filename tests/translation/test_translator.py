"""Factories -> AssetSpecs: keys, groups, deps (PySetl's dispatch rules), versions, metadata."""

from __future__ import annotations

import textwrap
from typing import Any

import dagster as dg
import pytest
from pysetl.workflow import Deliverable, Delivery, Factory, Pipeline, Stage
from pyspark.sql import SparkSession

from definitions.retail import factories as retail
from definitions.retail.pipeline import build_pipeline
from pysetl_dagster import (
    PySetlDefinitionError,
    PySetlFactoryData,
    PySetlTranslator,
    build_definitions,
    pysetl_pipeline,
)
from pysetl_dagster.spark.labels import no_leaked_spark_labels
from pysetl_dagster.translation.translator import factory_code_version
from tests.fixtures.numbers_pipeline import (
    Doubled,
    Numbers,
    StubFactory,
    Total,
    build_numbers_pipeline,
)


def _specs(p: Any) -> dict[str, dg.AssetSpec]:
    specs = {**p.translated.factory_specs, **p.translated.external_specs}
    return {spec.key.to_user_string(): spec for spec in specs.values()}


def test_example_keys_groups_and_deps_follow_pysetl_dispatch() -> None:
    specs = _specs(pysetl_pipeline(build_pipeline(), name="retail"))
    assert set(specs) == {
        "customers_csv", "orders_csv", "products_csv",
        "clean_customers", "clean_orders", "clean_products", "enriched_orders",
        "revenue_by_country", "customer_lifetime_value", "top_products",
    }  # fmt: skip
    deps = {k: sorted(d.asset_key.to_user_string() for d in s.deps) for k, s in specs.items()}
    assert deps["clean_orders"] == ["orders_csv"]
    assert deps["enriched_orders"] == ["clean_customers", "clean_orders", "clean_products"]
    assert deps["customer_lifetime_value"] == ["clean_customers", "enriched_orders"]
    assert {s.group_name for s in specs.values()} == {"retail"}
    assert specs["clean_orders"].kinds == {"pyspark", "pysetl"}
    assert specs["clean_orders"].description == retail.CleanOrders.__doc__.strip().replace(
        "\n    ", "\n"
    )
    assert specs["enriched_orders"].metadata["pysetl/stage"].value == 1


def test_column_schema_comes_from_the_typedspark_schema() -> None:
    specs = _specs(pysetl_pipeline(build_numbers_pipeline(), name="numbers"))
    schema = specs["doubled"].metadata["dagster/column_schema"].schema
    assert [(c.name, c.type) for c in schema.columns] == [
        ("value", "bigint"),
        ("doubled", "bigint"),
    ]


def test_key_prefix_and_overridden_translator() -> None:
    class TeamTranslator(PySetlTranslator):
        def get_asset_spec(self, data: Any) -> dg.AssetSpec:
            spec = super().get_asset_spec(data)
            if isinstance(data, PySetlFactoryData) and data.factory_type is Total:
                return spec.replace_attributes(
                    key=dg.AssetKey([*spec.key.path[:-1], "grand_total"])
                )
            return spec.merge_attributes(owners=["team:data@example.com"])

    p = pysetl_pipeline(
        build_numbers_pipeline(), name="numbers", translator=TeamTranslator(key_prefix="wh")
    )
    specs = _specs(p)
    assert set(specs) == {"wh/numbers", "wh/doubled", "wh/grand_total"}
    assert specs["wh/doubled"].owners == ["team:data@example.com"]
    # deps follow the translator's keys, and the asset is built from them
    assert [d.asset_key for d in specs["wh/grand_total"].deps] == [dg.AssetKey(["wh", "doubled"])]
    build_definitions(p, storage_path="unused").resolve_asset_graph()


def _factory_from_source(body: str) -> type:
    namespace: dict[str, Any] = {}
    source = (
        textwrap.dedent(
            """
        from pysetl.workflow import Factory
        class Versioned(Factory[int]):
            def read(self): return self
            def process(self):
        """
        )
        + textwrap.indent(textwrap.dedent(body), " " * 8)
        + textwrap.dedent(
            """
            def write(self): return self
            def get(self): return self.out
        """
        )
    )
    exec(compile(source, "<versioned>", "exec"), namespace)
    return namespace["Versioned"]


def test_code_version_changes_with_the_factory_code_only() -> None:
    a = _factory_from_source("self.out = 1\nreturn self")
    a_again = _factory_from_source("self.out = 1\nreturn self")
    b = _factory_from_source("self.out = 2\nreturn self")
    assert factory_code_version(a) == factory_code_version(a_again)
    assert factory_code_version(a) != factory_code_version(b)
    assert factory_code_version(Numbers) != factory_code_version(Doubled)


def test_dispatcher_rules_delivery_id_producer_and_consumers(spark: SparkSession) -> None:
    class A(StubFactory, Factory[int]):
        pass

    class B(A):
        delivery_id = "b"

    class C(A):
        pass

    class UsesId(A):
        x = Delivery[int](delivery_id="b")

    class UsesProducer(A):
        x = Delivery[int](producer=C)

    class Reserved(A):
        pass

    class UsesReserved(A):
        x = Delivery[int](delivery_id="r")

    pipeline = (
        Pipeline()
        .set_input_from_deliverable(Deliverable[int](5, delivery_id="r", consumers={UsesReserved}))
        .add_stage(Stage().add_factory(B()).add_factory(C()))
        .add_stage(
            Stage().add_factory(UsesId()).add_factory(UsesProducer()).add_factory(UsesReserved())
        )
    )
    p = pysetl_pipeline(pipeline, name="rules")
    deps = {k: [d.asset_key.to_user_string() for d in s.deps] for k, s in _specs(p).items()}
    assert deps["uses_id"] == ["b"]
    assert deps["uses_producer"] == ["c"]
    assert deps["uses_reserved"] == ["r"]
    # the same wiring PySetl itself uses: the native run succeeds with it
    with no_leaked_spark_labels(spark):  # PySetl sets a job group it never clears
        assert pipeline.run().get_output(UsesReserved) == 1


def test_code_version_is_the_same_in_every_process() -> None:
    """Sets (e.g. `consumers`) hash by address, so their order changes between processes."""
    import subprocess
    import sys

    code = (
        "from pysetl.workflow import Factory\n"
        "from pysetl_dagster import factory_code_version\n"
        "from tests.fixtures.numbers_pipeline import StubFactory\n"
        "class A(StubFactory, Factory[int]): pass\n"
        "class B(StubFactory, Factory[str]): pass\n"
        "class C(StubFactory, Factory[float]): pass\n"
        "class D(StubFactory, Factory[bytes]): pass\n"
        "class Shared(StubFactory, Factory[list]):\n"
        "    consumers = {A, B, C, D}\n"
        "print(factory_code_version(Shared))\n"
    )
    versions = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
        ).stdout.strip()
        for _ in range(4)
    }
    assert len(versions) == 1, versions


def test_a_factory_is_named_by_class_class_name_or_asset_key() -> None:
    from tests.fixtures.numbers_pipeline import Numbers, build_numbers_pipeline

    eu = pysetl_pipeline(build_numbers_pipeline(), name="eu", translator=PySetlTranslator("eu"))
    translated = eu.translated
    found = [
        translated.find_factories([ref], "test")
        for ref in (Numbers, "Numbers", "numbers", "eu/numbers")
    ]
    assert all(len(nodes) == 1 and nodes[0].factory_type is Numbers for nodes in found)
    with pytest.raises(
        PySetlDefinitionError, match=r"names Factory 'eu/nope'.*Numbers \(eu/numbers\)"
    ):
        translated.find_factories(["eu/nope"], "test")
