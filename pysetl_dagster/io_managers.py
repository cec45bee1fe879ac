"""Persisting Factory outputs: Spark writes Parquet, nothing is collected to the driver.

Layout under `base_path` (one folder per asset key, per partition if any)::

    <asset>/_current.json          which version readers get (replaced atomically)
    <asset>/<version>/             a Parquet dataset (or value.pickle for non-Spark values)

A version is written completely before `_current.json` is switched to it with an atomic
rename, so a run that crashes mid-write leaves the previous output readable and current. The
last `keep_versions` versions are kept (a reader that started before the switch can finish).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dagster import (
    AssetKey,
    AssetMaterialization,
    ConfigurableIOManager,
    InputContext,
    MetadataValue,
    OutputContext,
    TableColumn,
    TableSchema,
)
from pydantic import Field, PrivateAttr
from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from .errors import PySetlFactoryError
from .observability import (
    active_session,
    asset_scope,
    failed_spark_work,
    loaded_inputs,
    note_input,
    spark_metrics,
    spark_plan,
    spark_ui_url,
    split_spark_error,
    step_tag,
)
from .partitions import stored_partition_dirs

MANIFEST = "_current.json"
REJECTED = "_rejected"
"""Versions that failed a blocking check are moved here, never made current."""
ASSET_KEY_METADATA = "pysetl/asset_key"
"""Op outputs carrying this definition metadata are stored (and recorded) as that asset."""


class PySetlStorageError(Exception):
    """An asset has no readable stored output."""


@dataclass(frozen=True)
class StoredVersion:
    """A version written to storage by the Factory step, audited before it is published.

    Returned to Dagster as the step's output value: the IO manager then only records it.
    """

    location: Path
    version: str
    format: str
    asset_key: AssetKey | None
    observed: dict[str, Any] = field(default_factory=dict)
    schema_json: str | None = None
    published: bool = False
    write_s: float | None = None

    @property
    def path(self) -> Path:
        return self.location / self.version

    @property
    def rows(self) -> int | None:
        rows = self.observed.get("__rows")
        return int(rows) if rows is not None else None


def schema_hash(schema_json: str) -> str:
    """A short hash of a Spark schema: equal hashes, equal columns and types."""
    import hashlib

    return hashlib.sha256(schema_json.encode()).hexdigest()[:16]


def table_schema_of_struct(schema: StructType) -> TableSchema:
    return TableSchema(
        columns=[TableColumn(name=f.name, type=f.dataType.simpleString()) for f in schema.fields]
    )


def _spark() -> SparkSession:
    return SparkSession.builder.getOrCreate()


class SparkParquetIOManager(ConfigurableIOManager):
    """Stores Spark DataFrames (and typedspark DataSets) as versioned Parquet datasets."""

    base_path: str = Field(description="Root folder of all stored outputs.")
    validation_depth: str = Field(
        default="schema_and_data",
        description="Default depth of pandera checks: schema_only, data_only or "
        "schema_and_data (a Factory's Validation(depth=...) overrides it).",
    )
    check_sample_fraction: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Check uniqueness and custom checks on this fraction of rows (very large "
        "outputs); row-level checks ride on the write and are always exact.",
    )
    keep_versions: int = Field(default=2, ge=1, description="Versions kept per asset.")
    debug_plans: bool = Field(
        default=False,
        description="Debug mode: attach each output's Spark plan (explain, formatted).",
    )
    spark_metrics: bool = Field(
        default=True,
        description="Attach the Spark jobs, stages, tasks, records, bytes, shuffle, executor "
        "time, memory and spill of each materialization (from Spark's status store).",
    )

    # A version folder never changes once written, so within a run a DataFrame read from it can
    # serve every consumer: one file listing and footer read instead of one per consumer.
    _loaded: dict[str, DataFrame] = PrivateAttr(default_factory=dict)

    # -- locations -------------------------------------------------------------------------

    def asset_dir(self, asset_key: AssetKey, partition_key: str | None = None) -> Path:
        path = Path(self.base_path).joinpath(*asset_key.path)
        return path / partition_key if partition_key else path

    def current_version_path(self, asset_key: AssetKey, partition_key: str | None = None) -> Path:
        """Where the current version of an asset is stored; raises if it was never written."""
        location = self.asset_dir(asset_key, partition_key)
        path, _ = self._current(location, f"Asset {asset_key.to_user_string()}")
        return path

    def _output_location(
        self, context: OutputContext, partition: str | None = None
    ) -> tuple[Path, AssetKey | None]:
        key = _asset_key_of_output(context)
        if key is not None:
            return self.asset_dir(key, partition), key
        run_dir = Path(self.base_path, "_runs", context.run_id, context.step_key, context.name)
        return run_dir, None

    # -- IO manager ------------------------------------------------------------------------

    # -- write, audit, publish ---------------------------------------------------------------

    def write_version(
        self,
        asset_key: AssetKey | None,
        location: Path,
        value: Any,
        observe: list[Column] | None = None,
        *,
        run_id: str | None = None,
        label: str | None = None,
    ) -> StoredVersion:
        """Write a new version next to the current one, without making it current.

        `observe` aggregates (check failures, the row count) are computed by Spark during the
        write itself, with no extra job.
        """
        version = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        target = location / version
        location.mkdir(parents=True, exist_ok=True)
        if isinstance(value, DataFrame):
            observation = Observation(f"pysetl_{uuid.uuid4().hex[:8]}")
            exprs = observe or [F.count(F.lit(1)).alias("__rows")]
            # The Factory's lazy plan (and the reads of its inputs) runs here: label it.
            with asset_scope(
                value.sparkSession, run_id or "", label or str(location), f"store {version}"
            ):
                start = time.perf_counter()
                value.observe(observation, *exprs).write.mode("errorifexists").parquet(str(target))
                write_s = time.perf_counter() - start
            return StoredVersion(
                location,
                version,
                "parquet",
                asset_key,
                dict(observation.get),
                value.schema.json(),
                write_s=write_s,
            )
        target.mkdir()
        with open(target / "value.pickle", "wb") as fh:
            pickle.dump(value, fh)
        return StoredVersion(location, version, "pickle", asset_key)

    def publish(self, stored: StoredVersion, run_id: str) -> StoredVersion:
        """Make a written version current (atomic manifest switch) and prune old ones."""
        previous = self._read_manifest(stored.location) or {}
        manifest: dict[str, Any] = {
            "version": stored.version,
            "format": stored.format,
            "run_id": run_id,
            "created_at": time.time(),
        }
        if stored.rows is not None:
            manifest["rows"] = stored.rows
        if stored.schema_json is not None:
            manifest["schema"] = stored.schema_json
            if previous.get("schema"):
                manifest["previous_schema"] = previous["schema"]
        self._switch_manifest(stored.location, manifest)
        self._prune(stored.location, keep=stored.version)
        return replace(stored, published=True)

    def reject(self, stored: StoredVersion) -> Path:
        """Move a version that failed a blocking check aside, for inspection; never current."""
        rejected = stored.location / REJECTED
        rejected.mkdir(exist_ok=True)
        target = rejected / stored.version
        os.replace(stored.path, target)
        kept = sorted(p.name for p in rejected.iterdir())
        for name in kept[: -self.keep_versions]:
            shutil.rmtree(rejected / name, ignore_errors=True)
        return target

    def read_version(self, path: Path, schema_json: str | None = None) -> DataFrame:
        """A stored Parquet version, lazily. With its schema known (the manifest keeps it),
        Spark skips schema inference, which would otherwise run a job over the files' footers."""
        reader = (active_session() or _spark()).read
        if schema_json:
            reader = reader.schema(StructType.fromJson(json.loads(schema_json)))
        return reader.parquet(str(path))

    def current_manifest(
        self, asset_key: AssetKey, partition_key: str | None = None
    ) -> dict[str, Any] | None:
        return self._read_manifest(self.asset_dir(asset_key, partition_key))

    def location_for(self, context: OutputContext) -> tuple[Path, AssetKey | None]:
        partition = context.partition_key if context.has_partition_key else None
        return self._output_location(context, partition)

    # -- IO manager ------------------------------------------------------------------------

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        if obj is None:
            return
        if isinstance(obj, StoredVersion):  # written and audited by the Factory step
            stored, op_asset_key = obj, obj.asset_key
        else:
            location, op_asset_key = self.location_for(context)
            label = _label_of_output(context, op_asset_key)
            try:
                stored = self.write_version(
                    op_asset_key, location, obj, run_id=context.run_id, label=label
                )
            except Exception as exc:
                if not isinstance(obj, DataFrame):
                    raise
                raise PySetlFactoryError(
                    _write_error(context, label, "new", exc, obj.sparkSession)
                ) from exc
            if isinstance(obj, DataFrame):
                context.add_output_metadata(self.spark_metadata(obj, context.run_id, label))
        if not stored.published:
            stored = self.publish(stored, context.run_id)
        metadata = self.version_metadata(stored)
        context.add_output_metadata(metadata)
        if op_asset_key is not None and not context.has_asset_key:
            # A Stage op stores a Factory's output as its asset: record it, after the write.
            run_metadata = dict(context.output_metadata or {})
            context.log_event(
                AssetMaterialization(asset_key=op_asset_key, metadata={**run_metadata, **metadata})
            )

    def spark_metadata(self, df: DataFrame, run_id: str, label: str) -> dict[str, Any]:
        """What Spark did for one output (metrics by the step's tag) and, in debug mode, its
        plan."""
        metadata: dict[str, Any] = {}
        spark = df.sparkSession
        if self.debug_plans:
            metadata["spark/plan"] = MetadataValue.md(f"```\n{spark_plan(df)}\n```")
        if self.spark_metrics:
            metadata.update(_metrics_metadata(spark, step_tag(run_id, label)))
        return metadata

    def version_metadata(self, stored: StoredVersion) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "path": MetadataValue.path(str(stored.path)),
            "pysetl/storage_version": MetadataValue.text(stored.version),
        }
        if stored.schema_json is not None:
            metadata["dagster/column_schema"] = table_schema_of_struct(
                StructType.fromJson(json.loads(stored.schema_json))
            )
            metadata["pysetl/schema_hash"] = MetadataValue.text(schema_hash(stored.schema_json))
        if stored.rows is not None:
            metadata["dagster/row_count"] = MetadataValue.int(stored.rows)
        if stored.write_s is not None:
            metadata["pysetl/store_s"] = MetadataValue.float(round(stored.write_s, 4))
        return metadata

    def load_input(self, context: InputContext) -> Any:
        if (
            context.has_asset_key
            and context.has_asset_partitions
            and len(context.asset_partition_keys) != 1
        ):
            return self._load_partitions(context)
        if context.has_asset_key:
            key: AssetKey | None = context.asset_key
            partition = context.asset_partition_key if context.has_asset_partitions else None
            location = self.asset_dir(context.asset_key, partition)
        else:
            upstream = context.upstream_output
            assert upstream is not None, "an op input without an upstream output"
            location, key = self.location_for(upstream)
        name = key.to_user_string() if key else context.name
        path, manifest = self._current(location, f"Input {context.name!r} needs {name}, which")
        note_input(context.step_context.step.key, name, manifest["version"])
        if manifest["format"] == "parquet":
            if str(path) not in self._loaded:
                spark = active_session() or _spark()
                run_id = context.step_context.run_id
                with asset_scope(spark, run_id, _label_of_input(context), f"load {name}"):
                    self._loaded[str(path)] = self.read_version(path, manifest.get("schema"))
            return self._loaded[str(path)]
        with open(path / "value.pickle", "rb") as fh:
            return pickle.load(fh)

    def _load_partitions(self, context: InputContext) -> DataFrame:
        """Every stored partition of a partitioned upstream (an unpartitioned consumer reads
        them all): one lazy Parquet read over the partitions' current versions."""
        key = context.asset_key
        versions = [
            (location / manifest["version"], manifest)
            for location in stored_partition_dirs(self.asset_dir(key), context.asset_partition_keys)
            if (manifest := self._read_manifest(location)) is not None
        ]
        if not versions or any(m["format"] != "parquet" for _, m in versions):
            raise PySetlStorageError(
                f"Input {context.name!r} needs the partitions of {key.to_user_string()}, and "
                f"none is stored as Parquet under {self.asset_dir(key)}. Materialize (backfill) "
                "some of its partitions first."
            )
        name = key.to_user_string()
        for path, manifest in versions:
            step = context.step_context.step.key
            note_input(step, f"{name}/{path.parent.name}", manifest["version"])
        spark = active_session() or _spark()
        reader = spark.read
        schema = versions[-1][1].get("schema")
        if schema:
            reader = reader.schema(StructType.fromJson(json.loads(schema)))
        run_id = context.step_context.run_id
        with asset_scope(spark, run_id, _label_of_input(context), f"load {name}"):
            return reader.parquet(*(str(path) for path, _ in versions))

    # -- storage helpers -------------------------------------------------------------------

    def _current(self, location: Path, what: str) -> tuple[Path, dict[str, Any]]:
        """The current version's folder and manifest, or an error saying to materialize first."""
        manifest = self._read_manifest(location)
        if manifest is None:
            raise PySetlStorageError(
                f"{what} has no stored output under {location}. Materialize it first "
                "(or include it in the selection)."
            )
        return location / manifest["version"], manifest

    @staticmethod
    def _read_manifest(location: Path) -> dict[str, Any] | None:
        try:
            with open(location / MANIFEST) as fh:
                manifest: dict[str, Any] = json.load(fh)
        except FileNotFoundError:
            return None
        return manifest if (location / manifest["version"]).exists() else None

    @staticmethod
    def _switch_manifest(location: Path, manifest: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(dir=location, prefix=".manifest-", suffix=".tmp")
        os.chmod(tmp, 0o644)  # other users of the storage read manifests too
        with os.fdopen(fd, "w") as fh:
            json.dump(manifest, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, location / MANIFEST)

    def _prune(self, location: Path, keep: str) -> None:
        versions = sorted(
            p.name
            for p in location.iterdir()
            if p.is_dir() and not p.name.startswith((".", "_")) and p.name[:8].isdigit()
        )
        stale = [v for v in versions[: -self.keep_versions] if v != keep]
        for name in stale:
            shutil.rmtree(location / name, ignore_errors=True)


def _asset_key_of_output(context: OutputContext) -> AssetKey | None:
    if context.has_asset_key:
        return context.asset_key
    raw = (context.definition_metadata or {}).get(ASSET_KEY_METADATA)
    if isinstance(raw, MetadataValue):
        raw = getattr(raw, "value", raw)
    return AssetKey.from_user_string(raw) if isinstance(raw, str) else None


def _label_of_output(context: OutputContext, op_asset_key: AssetKey | None) -> str:
    """The asset (or `step.output`) whose tag labels the Spark jobs of this write."""
    key = op_asset_key or (context.asset_key if context.has_asset_key else None)
    return key.to_user_string() if key else f"{context.step_key}.{context.name}"


def _label_of_input(context: InputContext) -> str:
    """The consuming step's asset: a read is the consumer's work (and its metrics)."""
    keys = sorted(k.to_user_string() for k in context.step_context.get_output_asset_keys())
    return keys[0] if len(keys) == 1 else context.step_context.step.key


def _metrics_metadata(spark: SparkSession, tag: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        name: MetadataValue.int(value) for name, value in spark_metrics(spark, tag).items()
    }
    url = spark_ui_url(spark)
    if url:
        metadata["spark/ui"] = MetadataValue.url(f"{url}/jobs/")
    return metadata


def _write_error(
    context: OutputContext, label: str, version: str, exc: Exception, spark: SparkSession
) -> str:
    """The failed write's error: the Factory's lazy work fails here, so say which Factory,
    Stage, inputs and Spark stage, Spark's message first and the JVM trace folded below."""
    message, trace = split_spark_error(exc)
    factory = (context.op_def.tags or {}).get("pysetl/factory", context.step_key)
    stage = (context.op_def.tags or {}).get("pysetl/stage")
    lines = [
        f"Factory {factory} (asset {label}) failed while its output was computed and stored "
        f"(version {version}): {type(exc).__name__}: {message}"
    ]
    if stage is not None:
        lines.append(f"Stage: {stage}")
    inputs = loaded_inputs(context.step_key)
    if inputs:
        lines.append("Inputs: " + ", ".join(f"{k} (version {v})" for k, v in inputs.items()))
    failed = failed_spark_work(spark, step_tag(context.run_id, label))
    if failed:
        lines.append("Failed in " + failed)
    if trace:
        lines.append("--- JVM stack trace ---\n" + trace)
    return "\n".join(lines)
