"""Running one Factory: the single code path behind both assets and Stage ops.

PySetl keeps a Factory's injected inputs on the *class* (`Delivery` is a class attribute), so two
runs in one process would share them. Here every execution works on its own copy of the
Factory with fresh, instance-level Deliveries: nothing a run injects is visible to another run,
and nothing an earlier run (or a native `Pipeline.run()`) left on the class is read.

The Factory's read/process/write run in an `observability.asset_scope`: its Spark jobs carry the
run and asset tags and a description naming the method, the thread's labels are restored
afterwards (PySetl sets a job group and never clears it), and a Factory that raises leaves none
of its Spark jobs running.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from dagster import MetadataValue
from pysetl.workflow import Delivery, Factory
from pyspark.sql import DataFrame, SparkSession
from typedspark import DataSet

from pysetl_dagster.errors import PySetlFactoryError
from pysetl_dagster.execution.logs import factory_logging
from pysetl_dagster.spark.connect import lost_server_note
from pysetl_dagster.spark.labels import asset_scope, describe, spark_context, step_tag
from pysetl_dagster.spark.memory import persist_output, release
from pysetl_dagster.spark.metrics import failed_spark_work, split_spark_error
from pysetl_dagster.storage.loaded_inputs import loaded_inputs
from pysetl_dagster.translation.graph import FactoryNode

_UNSET = object()

OwnSink = Literal["inline", "deferred", "persist"]


class _InjectedDelivery(Delivery[Any]):
    """A per-run Delivery. Unlike PySetl's, a falsy value (0, "", []) counts as delivered."""

    _pysetl_dagster_value: Any = _UNSET

    def set(self, __value: Any) -> _InjectedDelivery:
        self._pysetl_dagster_value = __value
        return self

    def get(self) -> Any:
        if self._pysetl_dagster_value is _UNSET:
            return super().get()
        return self._pysetl_dagster_value


def _fresh_delivery(template: Delivery[Any], value: Any) -> Delivery[Any]:
    delivery = copy.copy(template)  # keeps producer, delivery_id, consumer and __orig_class__
    delivery.__class__ = _InjectedDelivery
    return delivery.set(value)


def coerce_to(payload_type: Any, value: Any) -> Any:
    """Give a Factory the type it declared: a plain DataFrame loaded from storage becomes the
    `DataSet[Schema]` its Delivery asks for (typedspark checks the columns on the way)."""
    if (
        isinstance(payload_type, type)
        and issubclass(payload_type, DataSet)
        and isinstance(value, DataFrame)
        and not isinstance(value, payload_type)
    ):
        return payload_type(value)
    return value


def _private_copy(factory: Factory[Any]) -> Factory[Any]:
    """A copy whose instance state (lists, dicts set in `__init__`) no other run shares; a
    shallow copy when the Factory holds something that cannot be deep-copied (a session)."""
    try:
        return copy.deepcopy(factory)
    except Exception:
        return copy.copy(factory)


@dataclass
class FactoryRun:
    """The outcome of one Factory execution."""

    output: Any
    timings: dict[str, float] = field(default_factory=dict)
    spark_app_id: str | None = None
    persisted: Any = None
    """The output, persisted across the Factory's own write and the stored version's (own
    sink, fallback); whoever stores the output releases it (`memory.release`)."""
    factory: Any = None
    deferred_write: list[str] | None = None
    log_format: str = "text"
    """Own sink, deferred: the Factory's attributes holding its output, which `write_own_sink`
    points at the stored version before it calls the Factory's `write()`."""

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            f"pysetl/{step}_s": MetadataValue.float(round(seconds, 4))
            for step, seconds in self.timings.items()
        }
        if self.spark_app_id:
            meta["spark/application_id"] = MetadataValue.text(self.spark_app_id)
        return meta


def run_factory(
    node: FactoryNode,
    inputs: Mapping[str, Any],
    *,
    spark: SparkSession | None,
    run_id: str,
    asset: str,
    config: Any = None,
    write: bool = True,
    own_sink: OwnSink = "inline",
    partition_key: str | None = None,
    log_format: str = "text",
) -> FactoryRun:
    """Run `read -> process -> write` on a private copy of the Factory and return `get()`.

    Args:
        inputs: Delivery attribute name -> value, for every Delivery the Factory declares.
        config: a `dagster.Config` instance, set as `factory.config`, when the Factory declares
            a nested `Config` class.
        write: call the Factory's own `write()` (skipped anyway when it is not writable).
        own_sink: when the output is stored again afterwards, how a writable Factory with a
            Spark DataFrame output computes its lineage once for both writes (docs/benchmarks.md,
            "own sink"): "inline" calls `write()` here (the lineage runs twice);
            "deferred" (the default of the Factory step, measured faster) skips it: the
            caller stores the output, then calls `write_own_sink` with the stored version;
            "persist" persists the output across `write()` here and the caller's write (also
            what "deferred" falls back to when no attribute of the Factory holds its output).
        partition_key: the run's partition of a partitioned Factory, set as
            `factory.partition_key` (see `pysetl_dagster.partitions`).
    """
    factory = _private_copy(node.factory)
    for attribute, template in node.deliveries:
        value = coerce_to(template.payload_type, inputs[attribute])
        setattr(factory, attribute, _fresh_delivery(template, value))
    if config is not None:
        factory.config = config  # type: ignore[attr-defined]
    if partition_key is not None:
        factory.partition_key = partition_key  # type: ignore[attr-defined]

    timings: dict[str, float] = {}
    persisted: Any = None
    deferred: list[str] | None = None
    step = "read"
    try:
        with (
            factory_logging(run_id, asset, node.name, log_format),
            asset_scope(spark, run_id, asset, f"{node.name}.read()") as scope,
        ):
            start = time.perf_counter()
            factory.read()
            timings["read"] = time.perf_counter() - start
            step = "process"
            scope.describe(describe(asset, f"{node.name}.process()", run_id))
            start = time.perf_counter()
            factory.process()
            timings["process"] = time.perf_counter() - start
            if write and factory.is_writable:
                step = "get"
                produced = factory.get() if own_sink != "inline" else None
                holders = _holders(factory, produced) if own_sink == "deferred" else []
                if holders:
                    deferred = holders
                else:
                    step = "write"
                    if own_sink != "inline":
                        persisted = persist_output(produced)
                    scope.describe(describe(asset, f"{node.name}.write()", run_id))
                    start = time.perf_counter()
                    factory.write()
                    timings["write"] = time.perf_counter() - start
            step = "get"
            output = factory.get()
    except Exception as exc:
        release(persisted)
        raise PySetlFactoryError(
            factory_error_message(node, asset, f"{step}()", exc, spark, run_id)
        ) from exc
    if output is None:
        raise PySetlFactoryError(
            f"Factory {node.name} (asset {asset}) returned None from get(). Store the result "
            "of process() on the instance and return it from get()."
        )
    app_id = None
    sc = spark_context(spark)
    if sc is not None:
        app_id = sc.applicationId
    return FactoryRun(
        output=output,
        timings=timings,
        spark_app_id=app_id,
        persisted=persisted,
        factory=factory,
        deferred_write=deferred,
        log_format=log_format,
    )


def _holders(factory: Factory[Any], output: Any) -> list[str]:
    """The Factory's instance attributes that hold its (Spark) output, by identity."""
    if not isinstance(output, DataFrame):
        return []
    return [name for name, value in vars(factory).items() if value is output]


def write_own_sink(
    run: FactoryRun,
    node: FactoryNode,
    stored: DataFrame,
    *,
    spark: SparkSession | None,
    run_id: str,
    asset: str,
) -> None:
    """The Factory's own `write()`, deferred until its output was stored: the attributes that
    held the output now hold the stored version read back, so the sink gets exactly the stored
    rows and the Factory's lineage is not computed again."""
    if not run.deferred_write:
        return
    factory = run.factory
    replacement = coerce_like(run.output, stored)
    for name in run.deferred_write:
        setattr(factory, name, replacement)
    try:
        with (
            factory_logging(run_id, asset, node.name, run.log_format),
            asset_scope(spark, run_id, asset, f"{node.name}.write()"),
        ):
            start = time.perf_counter()
            factory.write()
            run.timings["write"] = time.perf_counter() - start
    except Exception as exc:
        where = "write() (its own sink, fed from the stored version; nothing was published)"
        raise PySetlFactoryError(
            factory_error_message(node, asset, where, exc, spark, run_id)
        ) from exc
    finally:
        for name in run.deferred_write:
            setattr(factory, name, run.output)


def coerce_like(original: Any, value: DataFrame) -> Any:
    """`value` in the type of `original`: a typedspark `DataSet[Schema]` stays one."""
    schema = getattr(original, "_schema_annotations", None)
    if isinstance(original, DataSet) and schema is not None:
        return DataSet[schema](value)  # type: ignore[valid-type]
    return value


def factory_error_message(
    node: FactoryNode | None,
    asset: str,
    where: str,
    exc: BaseException,
    spark: SparkSession | None,
    run_id: str,
) -> str:
    """What failed, with context: the Factory, its Stage, the inputs it had (asset keys and
    storage versions), the Spark job and stage that failed, Spark's message, then the JVM
    stack trace folded below."""
    message, trace = split_spark_error(exc)
    lines = [
        f"Factory {node.name if node else '?'} (asset {asset}) failed in {where}: "
        f"{type(exc).__name__}: {message}"
    ]
    if node is not None and node.stage_index is not None:
        lines.append(f"Stage: {node.stage_index}")
    inputs = loaded_inputs()
    if inputs:
        lines.append(
            "Inputs: " + ", ".join(f"{key} (version {version})" for key, version in inputs.items())
        )
    failed = failed_spark_work(spark, step_tag(run_id, asset))
    if failed:
        lines.append("Failed in " + failed)
    lost = lost_server_note(spark, exc)
    if lost:  # first: the Factory is not at fault
        lines.insert(0, lost)
    if trace:
        lines.append("--- JVM stack trace ---\n" + trace)
    return "\n".join(lines)
