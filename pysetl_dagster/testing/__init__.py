"""Helpers for testing PySetl Factories and pipelines run by pysetl-dagster.

    from pysetl_dagster.testing import assert_frame_equal, materialize_pipeline, run_factory

    output = run_factory(CleanOrders, {"raw": raw_orders_df})            # one Factory
    assert_frame_equal(output, expected_df)                              # schema + rows

    with materialize_pipeline(pipeline, selection=[CleanOrders]) as run:  # real Dagster run
        assert run.result.success
        run.output("clean_orders").count()

A session-wide local SparkSession fixture (`spark`) comes with the pytest plugin: add
`pytest_plugins = ["pysetl_dagster.testing.plugin"]` to your `conftest.py`.

Everything runs the real thing: the Factory through the same code path as a Dagster step,
the pipeline through `dagster.materialize` into an ephemeral instance and a temporary storage.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from dagster import (
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    DagsterInstance,
    Definitions,
    ExecuteInProcessResult,
    materialize,
)
from pysetl.workflow import Factory, Pipeline
from pyspark.sql import DataFrame, SparkSession

__all__ = [
    "PipelineRun",
    "assert_frame_equal",
    "local_spark_session",
    "materialize_pipeline",
    "run_factory",
]


def local_spark_session(app_name: str = "pysetl-dagster-tests", cores: int = 2) -> SparkSession:
    """A small local SparkSession for tests (or the active one: Spark allows one per JVM).

    Few shuffle partitions and no UI keep small test data fast.

    Args:
        app_name: the Spark application name.
        cores: local cores (`local[cores]`).
    """
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    session = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName(app_name)
        .config("spark.sql.shuffle.partitions", str(cores))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return session


def run_factory(
    factory: Factory[Any] | type[Factory[Any]],
    inputs: Mapping[str, Any] | None = None,
    *,
    config: Mapping[str, Any] | Any = None,
    partition_key: str | None = None,
    write: bool = False,
    spark: SparkSession | None = None,
) -> Any:
    """Run one Factory (read, process, optionally write) on given inputs; return `get()`.

    The Factory runs as in a Dagster step: on a private copy with its own Deliveries, so the
    inputs of one test never leak into another through PySetl's class-level Deliveries.

    Args:
        factory: the Factory class (constructed without arguments) or an instance.
        inputs: Delivery attribute name -> value (a DataFrame, a `DataSet`, or whatever the
            Delivery carries, e.g. a source descriptor); every Delivery must be given.
        config: values of the Factory's nested `Config` (a mapping or a `Config` instance).
        partition_key: the partition of a partitioned Factory (`self.partition_key`).
        write: also call the Factory's own `write()` (off by default: tests rarely want its
            side effects).
        spark: the session its Spark jobs are labelled on (default: the active one).

    Raises:
        PySetlFactoryError: the Factory raised; the message names it and the failing method.
        KeyError: an input is missing; the message lists the Factory's Deliveries.
    """
    from pysetl_dagster.execution.runner import run_factory as run
    from pysetl_dagster.translation.graph import FactoryNode
    from pysetl_dagster.translation.naming import snake_case

    instance = factory() if isinstance(factory, type) else factory
    node = FactoryNode(instance, None)
    given = dict(inputs or {})
    expected = [attribute for attribute, _ in node.deliveries]
    missing = [a for a in expected if a not in given]
    unknown = [a for a in given if a not in expected]
    if missing or unknown:
        raise KeyError(
            f"run_factory({node.name}): inputs must name its Deliveries {expected}; "
            f"missing {missing}, unknown {unknown}."
        )
    config_value = config
    declared = getattr(type(instance), "Config", None)
    if isinstance(config, Mapping) and declared is not None:
        config_value = declared(**config)
    elif config is None and declared is not None:
        config_value = declared()
    result = run(
        node,
        given,
        spark=spark or SparkSession.getActiveSession(),
        run_id=f"test-{uuid.uuid4().hex[:8]}",
        asset=snake_case(node.name),
        config=config_value,
        write=write,
        partition_key=partition_key,
    )
    return result.output


def assert_frame_equal(
    actual: DataFrame,
    expected: DataFrame,
    *,
    check_nullability: bool = False,
    show: int = 5,
) -> None:
    """Assert two Spark DataFrames hold the same columns, types and rows, in any order.

    Rows compare as a multiset (duplicates count). On a difference the message shows the
    schema difference, or the first `show` rows only in `actual` and only in `expected`.

    Args:
        actual: the DataFrame under test.
        expected: what it should be.
        check_nullability: compare column nullability too (off: Parquet and CSV readers
            loosen it, which is rarely what a test means).
        show: how many differing rows of each side the message shows.

    Raises:
        AssertionError: the schemas or the rows differ.
    """

    def columns(df: DataFrame) -> list[tuple[str, str, bool]]:
        return [
            (f.name, f.dataType.simpleString(), f.nullable if check_nullability else True)
            for f in df.schema.fields
        ]

    left, right = columns(actual), columns(expected)
    if left != right:
        only_actual = [c for c in left if c not in right]
        only_expected = [c for c in right if c not in left]
        raise AssertionError(
            "DataFrames differ in schema:\n"
            f"  actual:   {_describe_columns(left)}\n"
            f"  expected: {_describe_columns(right)}\n"
            f"  only in actual: {_describe_columns(only_actual) or '-'}; "
            f"only in expected: {_describe_columns(only_expected) or '-'}"
        )
    extra = actual.exceptAll(expected)
    missing = expected.exceptAll(actual)
    extra_rows = extra.limit(show + 1).collect()
    missing_rows = missing.limit(show + 1).collect()
    if not extra_rows and not missing_rows:
        return
    lines = ["DataFrames differ in rows (order ignored):"]
    for label, rows, frame in (
        ("only in actual", extra_rows, extra),
        ("only in expected", missing_rows, missing),
    ):
        if not rows:
            continue
        total = frame.count() if len(rows) > show else len(rows)
        lines.append(f"  {label} ({total} row(s)):")
        lines += [f"    {tuple(row)}" for row in rows[:show]]
        if total > show:
            lines.append(f"    ... {total - show} more")
    raise AssertionError("\n".join(lines))


def _describe_columns(columns: Sequence[tuple[str, str, bool]]) -> str:
    """`name type[ not null]`, comma-separated: one line of an assertion message."""
    return ", ".join(
        f"{name} {kind}{'' if nullable else ' not null'}" for name, kind, nullable in columns
    )


@dataclass
class PipelineRun:
    """A finished test materialization: the Dagster result, its instance and storage.

    Use it as a context manager (`with materialize_pipeline(...) as run:`): leaving the block
    removes a temporary storage the helper created. Read outputs inside the block.

    Attributes:
        result: Dagster's `ExecuteInProcessResult` (success, events, check evaluations).
        instance: the Dagster instance the run was recorded in.
        storage_path: the root of the stored outputs.
    """

    result: ExecuteInProcessResult
    instance: DagsterInstance
    storage_path: str
    _temporary: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    def output(self, asset: str | AssetKey, partition_key: str | None = None) -> Any:
        """The current stored output of an asset (`"clean_orders"`, `"wh/clean_orders"`):
        a lazy DataFrame for Parquet outputs, the value for pickled ones."""
        from pysetl_dagster.storage.store import PySetlStorage

        key = asset if isinstance(asset, AssetKey) else AssetKey.from_user_string(asset)
        store = PySetlStorage(base_path=self.storage_path)
        path, manifest = store.current(
            store.asset_dir(key, partition_key), f"Asset {key.to_user_string()}"
        )
        if manifest.get("format") == "pickle":
            return store.read_pickle(str(path / "value.pickle"), key.to_user_string())
        return store.read_version(str(path), manifest.get("schema"))

    def close(self) -> None:
        """Remove the temporary storage (if the helper made one) and the instance."""
        self.instance.dispose()
        if self._temporary is not None:
            self._temporary.cleanup()
            self._temporary = None

    def __enter__(self) -> PipelineRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def materialize_pipeline(
    pipeline: Any,
    *,
    selection: Iterable[str | AssetKey | type[Factory[Any]]] | None = None,
    name: str = "pipeline",
    storage_path: str | Path | None = None,
    instance: DagsterInstance | None = None,
    resources: Mapping[str, Any] | None = None,
    run_config: Mapping[str, Any] | None = None,
    partition_key: str | None = None,
    tags: Mapping[str, str] | None = None,
    raise_on_error: bool = True,
) -> PipelineRun:
    """Materialize a pipeline (or a selection of it) with Dagster, into a temporary instance
    and storage, and return the run.

    Args:
        pipeline: a `PySetlPipelineDefinitions` (from `pysetl_pipeline`), a PySetl `Pipeline`
            (translated here as pipeline `name`), or a `Definitions` (its own resources are
            used, unless `resources` overrides them).
        selection: what to materialize: asset keys (`"clean_orders"`), `AssetKey`s or Factory
            classes (default: every Factory); upstream outputs not selected are read from
            the storage.
        name: the pipeline's name when `pipeline` is a PySetl `Pipeline`.
        storage_path: where outputs go (default: a temporary folder, removed by
            `PipelineRun.close()`).
        instance: the Dagster instance (default: an ephemeral, in-memory one).
        resources: resources replacing the defaults (`pyspark`, `io_manager`).
        run_config: the run's config (e.g. Factory `Config` values under `ops`).
        partition_key: the partition to materialize.
        tags: the run's tags (e.g. `{"pysetl/force": "all"}`).
        raise_on_error: raise when the run fails (off: inspect `run.result`).
    """
    from pysetl_dagster.defs.build import build_definitions
    from pysetl_dagster.defs.pipeline import PySetlPipelineDefinitions, pysetl_pipeline
    from pysetl_dagster.spark.resource import PySparkSessionResource
    from pysetl_dagster.storage.io_manager import SparkParquetIOManager

    temporary = None
    if storage_path is None:
        temporary = tempfile.TemporaryDirectory(prefix="pysetl-dagster-test-")
        storage_path = temporary.name
    storage = str(storage_path)
    if isinstance(pipeline, Pipeline):
        pipeline = pysetl_pipeline(pipeline, name=name)
    if isinstance(pipeline, PySetlPipelineDefinitions):
        pipelines: list[PySetlPipelineDefinitions] = [pipeline]
        defs = build_definitions(pipeline, storage_path=storage)
    elif isinstance(pipeline, Definitions):
        pipelines, defs = [], pipeline
    else:
        raise TypeError(
            "materialize_pipeline takes a PySetlPipelineDefinitions, a PySetl Pipeline or "
            f"Definitions, not {type(pipeline).__name__}."
        )
    all_resources: dict[str, Any] = dict(defs.resources or {})
    all_resources["io_manager"] = SparkParquetIOManager(base_path=storage)
    # reuse the test session; never stop it at exit (the fixture owns it)
    all_resources["pyspark"] = PySparkSessionResource(master=None, stop_at_exit=False)
    all_resources.update(resources or {})
    assets = [a for a in defs.assets or [] if isinstance(a, (AssetsDefinition, AssetSpec))]
    keys = _selected_keys(selection, pipelines) if selection is not None else None
    if keys is None:
        keys = [
            key
            for a in assets
            if isinstance(a, AssetsDefinition) and a.is_materializable
            for key in a.keys
        ]
    own_instance = instance or DagsterInstance.ephemeral()
    try:
        result = materialize(
            assets,
            selection=keys,
            resources=all_resources,
            instance=own_instance,
            run_config=dict(run_config) if run_config else None,
            partition_key=partition_key,
            tags=dict(tags) if tags else None,
            raise_on_error=raise_on_error,
        )
    except BaseException:
        if temporary is not None:
            temporary.cleanup()
        raise
    return PipelineRun(result, own_instance, storage, temporary)


def _selected_keys(
    selection: Iterable[str | AssetKey | type[Factory[Any]]],
    pipelines: Sequence[Any],
) -> list[AssetKey]:
    """Asset keys of a selection given as strings, keys or Factory classes."""
    keys: list[AssetKey] = []
    for item in selection:
        if isinstance(item, AssetKey):
            keys.append(item)
        elif isinstance(item, str):
            keys.append(AssetKey.from_user_string(item))
        else:
            for pipeline in pipelines:
                try:
                    keys.append(pipeline.asset_key(item))
                    break
                except KeyError:
                    continue
            else:
                raise KeyError(f"Factory {item.__name__} is in none of the given pipelines.")
    return keys
