"""Caching: unchanged Factories are reused with zero Spark jobs; any change re-runs exactly the
changed Factory and what depends on it, never a wrong hit.

The project under test is written as real modules into a temporary folder (a helper module, a
Factories module, a pipeline module), imported, then edited and reloaded the way a code server
reloads a project: `importlib.reload`, with bytecode caching off so an edit is always seen.
"""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import dagster as dg
import pytest
from pyspark.sql import SparkSession

import definitions
from pysetl_dagster import SparkParquetIOManager, pysetl_pipeline
from pysetl_dagster.spark.labels import spark_jobs_submitted
from pysetl_dagster.storage.caching import FORCE_TAG

HELPERS = '''
from pyspark.sql import functions as F


def scale(column):
    """Used by Middle, from another module."""
    return column * 2
'''

FACTORIES = """
from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import dagster as dg
from pysetl.workflow import Delivery, Factory
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from .helpers import scale


@dataclass(frozen=True)
class NumbersFile:
    path: str


class Source(Factory[DataFrame]):
    src = Delivery[NumbersFile]()

    def read(self) -> Self:
        spark = SparkSession.builder.getOrCreate()
        self.df = spark.read.schema("n long").csv(self.src.get().path)
        return self

    def process(self) -> Self:
        return self

    def write(self) -> Self:
        return self

    def get(self) -> DataFrame:
        return self.df


class Middle(Factory[DataFrame]):
    source = Delivery[DataFrame](producer=Source)

    def read(self) -> Self:
        self.df = self.source.get()
        return self

    def process(self) -> Self:
        self.df = self.df.withColumn("m", scale(F.col("n")))
        return self

    def write(self) -> Self:
        return self

    def get(self) -> DataFrame:
        return self.df


class Leaf(Factory[DataFrame]):
    class Config(dg.Config):
        factor: int = 1

    middle = Delivery[DataFrame](producer=Middle)

    def read(self) -> Self:
        self.df = self.middle.get()
        return self

    def process(self) -> Self:
        self.df = self.df.withColumn("leaf", F.col("m") * self.config.factor + LEAF_OFFSET)
        return self

    def write(self) -> Self:
        return self

    def get(self) -> DataFrame:
        return self.df


class Side(Factory[DataFrame]):
    source = Delivery[DataFrame](producer=Source)

    def read(self) -> Self:
        self.df = self.source.get()
        return self

    def process(self) -> Self:
        self.df = self.df.where(F.col("n") > 1)
        return self

    def write(self) -> Self:
        return self

    def get(self) -> DataFrame:
        return self.df


LEAF_OFFSET = 0
"""

PIPELINE = """
from pysetl.workflow import Deliverable, Pipeline, Stage

from .factories import Leaf, Middle, NumbersFile, Side, Source


def build(path):
    return (
        Pipeline()
        .set_input_from_deliverable(Deliverable[NumbersFile](NumbersFile(path)))
        .add_stage(Stage().add_factory(Source()))
        .add_stage(Stage().add_factory(Middle()).add_factory(Side()))
        .add_stage(Stage().add_factory(Leaf()))
    )
"""


class Project:
    """A small user project on disk: edit a module, then `reload()` it like a code server."""

    def __init__(self, root: Path, name: str) -> None:
        self.root, self.name = root, name
        self.package = root / name
        self.package.mkdir(parents=True)
        (self.package / "__init__.py").write_text("")
        self.write("helpers", HELPERS)
        self.write("factories", FACTORIES)
        self.write("pipeline", PIPELINE)
        self.data = root / "numbers.csv"
        self.data.write_text("1\n2\n3\n")
        sys.path.insert(0, str(root))
        self.modules: dict[str, ModuleType] = {}
        self.reload()

    def write(self, module: str, source: str) -> None:
        (self.package / f"{module}.py").write_text(textwrap.dedent(source))

    def edit(self, module: str, old: str, new: str) -> None:
        path = self.package / f"{module}.py"
        text = path.read_text()
        assert old in text, f"{old!r} not in {module}"
        path.write_text(text.replace(old, new))

    def reload(self) -> None:
        importlib.invalidate_caches()
        for module in ("helpers", "factories", "pipeline"):
            full = f"{self.name}.{module}"
            self.modules[module] = (
                importlib.reload(sys.modules[full])
                if full in sys.modules
                else importlib.import_module(full)
            )

    def assets(self) -> list[Any]:
        pipeline = self.modules["pipeline"].build(str(self.data))
        return pysetl_pipeline(pipeline, name=self.name).assets

    def definitions(self) -> Any:
        return pysetl_pipeline(self.modules["pipeline"].build(str(self.data)), name=self.name)


_projects = iter(range(10_000))


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    dont_write = sys.dont_write_bytecode
    sys.dont_write_bytecode = True  # an edit within the same second is still seen
    proj = Project(tmp_path / "src", f"cache_project_{next(_projects)}")
    yield proj
    sys.dont_write_bytecode = dont_write
    sys.path.remove(str(proj.root))


def cached_by_asset(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    """Asset -> whether this run reused a stored version (`pysetl/cached`)."""
    return {
        event.asset_key.to_user_string(): bool(
            event.step_materialization_data.materialization.metadata["pysetl/cached"].value
        )
        for event in result.get_asset_materialization_events()
        if event.asset_key is not None
    }


def materialize(assets: list[Any], resources: dict[str, Any], **kwargs: Any) -> Any:
    result = dg.materialize(assets, resources=resources, **kwargs)
    assert result.success
    return result


RECOMPUTED_ALL = {"source": False, "middle": False, "side": False, "leaf": False}


def test_unchanged_example_reruns_with_zero_spark_jobs(
    spark: SparkSession, resources: dict[str, Any]
) -> None:
    """The retail example, asset job then Stage job: the second run of each reuses every
    Factory's stored version, runs no Spark job at all, and leaves the stored outputs as they
    were."""
    io: SparkParquetIOManager = resources["io_manager"]
    keys = [dg.AssetKey(k) for k in ("clean_orders", "enriched_orders", "top_products")]
    first = materialize(definitions.retail.assets, resources)
    assert not any(cached_by_asset(first).values())
    stored = {key: io.current_version_path(key) for key in keys}

    before = spark_jobs_submitted(spark)
    second = materialize(definitions.retail.assets, resources)
    assert spark_jobs_submitted(spark) == before, "a cached run submitted Spark jobs"
    cached = cached_by_asset(second)
    assert len(cached) == 7 and all(cached.values()), cached
    assert {key: io.current_version_path(key) for key in keys} == stored
    # the check results of the reused version are reported again, marked as cached
    checks = second.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks)
    assert all(c.metadata["pysetl/cached"].value for c in checks)

    assert definitions.retail.stage_job is not None
    before = spark_jobs_submitted(spark)
    staged = definitions.retail.stage_job.execute_in_process(resources=resources)
    assert staged.success
    assert spark_jobs_submitted(spark) == before, "a cached Stage-job run submitted Spark jobs"
    materializations = staged.get_asset_materialization_events()
    assert len(materializations) == 7
    for event in materializations:
        materialization = event.step_materialization_data.materialization
        assert materialization.metadata["pysetl/cached"].value is True
        # Stage-job materializations carry the data and code versions too
        assert materialization.tags is not None
        assert materialization.tags["dagster/data_version"]
        assert materialization.tags["dagster/code_version"]
    assert {key: io.current_version_path(key) for key in keys} == stored


def test_data_version_is_the_cache_key(project: Project, resources: dict[str, Any]) -> None:
    result = materialize(project.assets(), resources)
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        assert materialization.tags is not None
        assert (
            materialization.tags["dagster/data_version"]
            == materialization.metadata["pysetl/cache_key"].value
        )


def test_code_edit_reruns_the_factory_and_its_dependents_only(
    project: Project, resources: dict[str, Any]
) -> None:
    assert cached_by_asset(materialize(project.assets(), resources)) == RECOMPUTED_ALL
    assert all(cached_by_asset(materialize(project.assets(), resources)).values())

    project.edit("factories", "LEAF_OFFSET = 0", "LEAF_OFFSET = 10")  # a constant Leaf uses
    project.reload()
    assert cached_by_asset(materialize(project.assets(), resources)) == {
        "source": True, "middle": True, "side": True, "leaf": False,
    }  # fmt: skip

    project.edit("factories", 'F.col("n") > 1', 'F.col("n") > 2')  # Side's own code
    project.reload()
    assert cached_by_asset(materialize(project.assets(), resources)) == {
        "source": True, "middle": True, "side": False, "leaf": True,
    }  # fmt: skip
    side = resources["io_manager"].current_version_path(dg.AssetKey("side"))
    assert SparkSession.builder.getOrCreate().read.parquet(str(side)).count() == 1


def test_helper_edit_in_another_module_reruns_its_callers(
    project: Project, resources: dict[str, Any]
) -> None:
    """The complaint of Prefect 23062 / Hamilton 1715: a called helper edited in another
    module must not be a silent cache hit."""
    materialize(project.assets(), resources)
    project.edit("helpers", "return column * 2", "return column * 3")
    project.reload()
    result = materialize(project.assets(), resources)
    assert cached_by_asset(result) == {
        "source": True, "middle": False, "side": True, "leaf": False,
    }  # fmt: skip
    leaf = resources["io_manager"].current_version_path(dg.AssetKey("leaf"))
    rows = SparkSession.builder.getOrCreate().read.parquet(str(leaf)).orderBy("n").collect()
    assert [r["m"] for r in rows] == [3, 6, 9]


def test_config_change_reruns_that_factory(project: Project, resources: dict[str, Any]) -> None:
    materialize(project.assets(), resources)
    config = {"ops": {"leaf": {"config": {"factor": 5}}}}
    result = materialize(project.assets(), resources, run_config=config)
    assert cached_by_asset(result) == {
        "source": True, "middle": True, "side": True, "leaf": False,
    }  # fmt: skip
    again = materialize(project.assets(), resources, run_config=config)
    assert all(cached_by_asset(again).values())


def test_external_input_file_change_reruns_its_readers_and_downstream(
    project: Project, resources: dict[str, Any]
) -> None:
    materialize(project.assets(), resources)
    project.data.write_text("1\n2\n3\n4\n")
    result = materialize(project.assets(), resources)
    assert cached_by_asset(result) == RECOMPUTED_ALL
    leaf = resources["io_manager"].current_version_path(dg.AssetKey("leaf"))
    assert SparkSession.builder.getOrCreate().read.parquet(str(leaf)).count() == 4


def test_a_rewrite_keeping_size_and_mtime_recomputes_and_content_mode_ignores_times(
    project: Project, resources: dict[str, Any], storage: Path
) -> None:
    """What `cp -p`, `tar -x` or `rsync -a` of a fixed-width extract produce: other bytes, the
    same size, the same mtime. The stat fingerprint sees the ctime (and inode) no copy tool
    sets, so the Factory and its dependents recompute. With content hashing the same bytes
    under new times are the same input: nothing recomputes."""
    materialize(project.assets(), resources)
    before = project.data.stat()
    project.data.write_text("7\n8\n9\n")
    os.utime(project.data, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = project.data.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    result = materialize(project.assets(), resources)
    assert cached_by_asset(result) == RECOMPUTED_ALL
    source = result.asset_materializations_for_node("source")[0].metadata
    assert source["pysetl/cache_fingerprint"].value == {"external:src": "stat"}
    leaf = resources["io_manager"].current_version_path(dg.AssetKey("leaf"))
    rows = SparkSession.builder.getOrCreate().read.parquet(str(leaf)).orderBy("n").collect()
    assert [r["n"] for r in rows] == [7, 8, 9]

    content = {
        **resources,
        "io_manager": SparkParquetIOManager(base_path=str(storage), input_fingerprint="content"),
    }
    first = materialize(project.assets(), content, selection="source")  # another kind of key
    assert cached_by_asset(first) == {"source": False}
    project.data.write_text("7\n8\n9\n")  # the same bytes, new times
    os.utime(project.data, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
    again = materialize(project.assets(), content, selection="source")
    assert cached_by_asset(again) == {"source": True}
    source = again.asset_materializations_for_node("source")[0].metadata
    assert source["pysetl/cache_fingerprint"].value == {"external:src": "content"}


def test_remote_listing_with_and_without_a_jvm(spark: SparkSession, tmp_path: Path) -> None:
    """A URI is listed through the classic session's Hadoop client, or through pyarrow.fs when
    there is no JVM (Spark Connect); a file without a filesystem checksum counts by size and
    mtime there ("listing"), and a rewrite with other bytes of the same size is seen by both."""
    from pysetl_dagster.storage.fingerprints import (
        FingerprintOptions,
        _arrow_entries,
        _hadoop_entries,
    )

    data = tmp_path / "remote" / "part-0.csv"
    data.parent.mkdir()
    data.write_text("1,2\n")
    uri = f"file://{data.parent}"
    hadoop, arrow = FingerprintOptions(), FingerprintOptions()
    by_hadoop = _hadoop_entries(spark, uri, hadoop)
    by_arrow = _arrow_entries(uri, arrow)
    assert by_hadoop and by_arrow and hadoop.kinds == arrow.kinds == {"listing"}
    data.write_text("3,4\n")
    os.utime(data, ns=(0, 2 * 10**18))
    assert _hadoop_entries(spark, uri, FingerprintOptions()) != by_hadoop
    assert _arrow_entries(uri, FingerprintOptions()) != by_arrow
    assert _arrow_entries(f"file://{tmp_path}/absent", FingerprintOptions()) is None


def test_stage_job_skips_and_reruns_like_the_asset_job(
    project: Project, resources: dict[str, Any], spark: SparkSession
) -> None:
    job = project.definitions().stage_job
    assert job.execute_in_process(resources=resources).success
    project.edit("factories", "LEAF_OFFSET = 0", "LEAF_OFFSET = 1")
    project.reload()
    job = project.definitions().stage_job
    before = spark_jobs_submitted(spark)
    result = job.execute_in_process(resources=resources)
    assert result.success
    assert cached_by_asset(result) == {
        "source": True, "middle": True, "side": True, "leaf": False,
    }  # fmt: skip
    assert spark_jobs_submitted(spark) > before  # Leaf was computed


def test_ttl_expiry_and_force_recompute(
    project: Project, resources: dict[str, Any], storage: Path
) -> None:
    short_lived = {
        **resources,
        "io_manager": SparkParquetIOManager(base_path=str(storage), cache_ttl_seconds=1),
    }
    materialize(project.assets(), short_lived)
    time.sleep(1.5)
    expired = materialize(project.assets(), short_lived)
    assert cached_by_asset(expired) == RECOMPUTED_ALL
    reasons = {
        node: str(expired.asset_materializations_for_node(node)[0].metadata["pysetl/cache_reason"])
        for node in ("source", "leaf")
    }
    assert "expired" in reasons["source"]
    assert "changed since the stored version: input:middle" in reasons["leaf"]

    # force one asset by run tag: it recomputes, and so do its consumers (its data may differ)
    forced = materialize(project.assets(), resources, tags={FORCE_TAG: "middle"})
    assert cached_by_asset(forced) == {
        "source": True, "middle": False, "side": True, "leaf": False,
    }  # fmt: skip
    everything = materialize(project.assets(), resources, tags={FORCE_TAG: "all"})
    assert cached_by_asset(everything) == RECOMPUTED_ALL


class Opaque:
    """An input with no visible content: it cannot be fingerprinted."""

    __slots__ = ("rows",)

    def __init__(self, rows: int) -> None:
        self.rows = rows


def test_input_without_fingerprint_always_recomputes_and_says_so(
    resources: dict[str, Any],
) -> None:
    from typing import Self

    from pysetl.workflow import Deliverable, Delivery, Factory, Pipeline, Stage
    from pyspark.sql import DataFrame

    class FromOpaque(Factory[DataFrame]):
        src = Delivery[Opaque]()

        def read(self) -> Self:
            return self

        def process(self) -> Self:
            spark = SparkSession.builder.getOrCreate()
            self.df = spark.range(self.src.get().rows)
            return self

        def write(self) -> Self:
            return self

        def get(self) -> DataFrame:
            return self.df

    pipeline = (
        Pipeline()
        .set_input_from_deliverable(Deliverable[Opaque](Opaque(3)))
        .add_stage(Stage().add_factory(FromOpaque()))
    )
    assets = pysetl_pipeline(pipeline, name="opaque").assets
    for _ in range(2):
        result = materialize(assets, resources)
        assert cached_by_asset(result) == {"from_opaque": False}
        metadata = result.asset_materializations_for_node("from_opaque")[0].metadata
        missing = metadata["pysetl/cache_missing"].value
        assert isinstance(missing, dict) and list(missing) == ["external:src"]
        assert "Opaque" in missing["external:src"]
        assert "incomplete" in str(metadata["pysetl/cache_reason"].value)


def test_a_uri_that_cannot_be_listed_recomputes_and_says_so(resources: dict[str, Any]) -> None:
    """A Factory naming an `s3a://` location with no S3 connector on the classpath (or no
    credentials): the run still succeeds, and the cache says why it could not skip."""
    from typing import Self

    from pysetl.workflow import Factory, Pipeline, Stage
    from pyspark.sql import DataFrame

    class ToBucket(Factory[DataFrame]):
        EXPORT = "s3a://legacy-bucket/exports/daily"

        def read(self) -> Self:
            return self

        def process(self) -> Self:
            self.df = SparkSession.builder.getOrCreate().range(2)
            return self

        def write(self) -> Self:
            return self

        def get(self) -> DataFrame:
            return self.df

    assets = pysetl_pipeline(
        Pipeline().add_stage(Stage().add_factory(ToBucket())), name="uri"
    ).assets
    for _ in range(2):
        result = materialize(assets, resources)
        assert cached_by_asset(result) == {"to_bucket": False}
        metadata = result.asset_materializations_for_node("to_bucket")[0].metadata
        missing = metadata["pysetl/cache_missing"].value
        assert isinstance(missing, dict) and list(missing) == ["code"], missing
        assert "s3a://legacy-bucket/exports/daily cannot be listed" in missing["code"], missing
        assert "S3AFileSystem" in missing["code"], missing


def test_cache_cli_lists_shows_and_invalidates_downstream(
    resources: dict[str, Any], storage: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    import os
    import subprocess

    from pysetl_dagster.cli.main import main

    materialize(definitions.retail.assets, resources)
    root = Path(__file__).resolve().parents[2]
    listed = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "pysetl-dagster"),
            "cache",
            "list",
            "--storage",
            str(storage),
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "250"},
    )
    assert listed.returncode == 0, listed.stderr
    assert "clean_orders" in listed.stdout and "top_products" in listed.stdout
    assert "yes" in listed.stdout  # reusable

    assert main(["cache", "show", "clean_orders", "--storage", str(storage)]) == 0
    shown = capsys.readouterr().out
    manifest = json.loads(shown[: shown.rindex("}") + 1])["current"]
    assert manifest["cache_key"] and manifest["computed_by_run"]
    assert set(manifest["cache_parts"]) >= {"code", "config", "external:orders_src"}

    assert (
        main(["cache", "invalidate", "enriched_orders", "--downstream", "--storage", str(storage)])
        == 0
    )
    out = capsys.readouterr().out
    assert out.count("invalidated") == 4, out  # enriched_orders and its three consumers
    result = materialize(definitions.retail.assets, resources)
    assert cached_by_asset(result) == {
        "clean_customers": True, "clean_orders": True, "clean_products": True,
        "enriched_orders": False, "revenue_by_country": False,
        "customer_lifetime_value": False, "top_products": False,
    }  # fmt: skip
    # the data stayed readable all along; now everything is reusable again
    assert all(cached_by_asset(materialize(definitions.retail.assets, resources)).values())
    assert main(["cache", "invalidate", "no_such_asset", "--storage", str(storage)]) == 1
