"""Persisting Factory outputs: Spark writes Parquet, nothing is collected to the driver.

Layout under `base_path` (a local path or any Hadoop URI Spark writes: `file://`, `hdfs://`,
`s3a://`), one folder per asset key, one more level per partition if any::

    <asset>[/<partition>]/_current.json                 which version readers get
    <asset>[/<partition>]/<version>/                    Parquet dataset (or value.pickle)
    <asset>[/<partition>]/<version>/_pysetl_version.json  the version's record (commit marker)

A version is written completely, then its record, before `_current.json` is switched to it
with an atomic rename, so a run that crashes mid-write leaves the previous output readable and
current. The last `keep_versions` complete versions are kept (a reader that started before the
switch can finish); folders of crashed writes are removed. Every storage call goes through
Spark's Hadoop FileSystem API: see `pysetl_dagster.storage` for the guarantees.
"""

from __future__ import annotations

import json
import pickle
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from dagster import (
    AssetKey,
    AssetMaterialization,
    ConfigurableIOManager,
    InitResourceContext,
    InputContext,
    MetadataValue,
    OutputContext,
    TableColumn,
    TableSchema,
)
from dagster._core.definitions.data_version import (
    CODE_VERSION_TAG,
    DATA_VERSION_IS_USER_PROVIDED_TAG,
    DATA_VERSION_TAG,
)
from pydantic import Field, PrivateAttr
from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from pysetl_dagster.automation.conditions import SKIPPED, is_skipped, remember_skipped, was_skipped
from pysetl_dagster.errors import PySetlFactoryError, PySetlStorageError
from pysetl_dagster.spark.labels import active_session, asset_scope, step_tag
from pysetl_dagster.spark.metrics import (
    failed_spark_work,
    spark_metrics,
    spark_plan,
    spark_ui_url,
    split_spark_error,
)
from pysetl_dagster.storage.filesystem import Location, qualified
from pysetl_dagster.storage.hadoop import HadoopFS
from pysetl_dagster.storage.loaded_inputs import loaded_inputs, note_input
from pysetl_dagster.storage.versions import (
    MANIFEST,
    REJECTED,
    VersionStore,
    partition_folder,
    partition_folders,
    partition_key_of,
)

__all__ = ["MANIFEST", "REJECTED", "Location"]
ASSET_KEY_METADATA = "pysetl/asset_key"
"""Op outputs carrying this definition metadata are stored (and recorded) as that asset."""


@dataclass(frozen=True)
class StoredVersion:
    """A version written to storage by the Factory step, audited before it is published.

    Returned to Dagster as the step's output value: the IO manager then only records it.
    """

    location: Location
    version: str
    format: str
    asset_key: AssetKey | None
    observed: dict[str, Any] = field(default_factory=dict)
    schema_json: str | None = None
    published: bool = False
    write_s: float | None = None
    data_version: str | None = None
    """The Dagster data version to record (the cache key), for materializations the IO manager
    logs itself (Stage jobs); assets pass it on their `Output`."""
    code_version: str | None = None
    cached: bool = False

    @property
    def path(self) -> Location:
        return Location(self.location) / self.version

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
    keep_versions: int = Field(
        default=2, ge=1, description="Complete versions kept per asset (and per partition)."
    )
    lease_timeout_s: float = Field(
        default=300.0,
        gt=60,
        description="A version being written by a writer on another host whose lease was not "
        "refreshed for this long is an orphan (on the same host: as soon as the writer "
        "process is gone).",
    )
    debug_plans: bool = Field(
        default=False,
        description="Debug mode: attach each output's Spark plan (explain, formatted).",
    )
    spark_metrics: bool = Field(
        default=True,
        description="Attach the Spark jobs, stages, tasks, records, bytes, shuffle, executor "
        "time, memory and spill of each materialization (from Spark's status store).",
    )
    cache: bool = Field(
        default=True,
        description="Reuse a stored version whose cache key (code, config, inputs) matches "
        "instead of recomputing the Factory (see pysetl_dagster.caching).",
    )
    cache_ttl_s: float | None = Field(
        default=None,
        gt=0,
        description="Default time-to-live of stored versions for the cache, in seconds "
        "(a Factory's `cache_ttl` overrides it). None: versions never expire.",
    )

    own_sink: Literal["deferred", "persist", "inline"] = Field(
        default="deferred",
        description="A Factory that also saves its output itself in write(): 'deferred' (the "
        "default, measured faster) stores the version first, then runs write() on the stored "
        "version read back; 'persist' persists the output (MEMORY_AND_DISK) across both "
        "writes; 'inline' writes twice (the lineage is computed twice).",
    )
    in_run_handover: Literal["stored", "memory"] = Field(
        default="stored",
        description="How a consumer in the same run gets an upstream Spark output: 'stored' "
        "reads the published Parquet version back (the default: measured faster, see "
        "docs/benchmarks.md); 'memory' hands over the output persisted while it was written "
        "(released when the run ends). Either way only a published version reaches consumers.",
    )

    # A version folder never changes once written, so within a run a DataFrame read from it can
    # serve every consumer: one file listing and footer read instead of one per consumer.
    _loaded: dict[str, DataFrame] = PrivateAttr(default_factory=dict)
    # The manifest each loaded value was read from (by id of the value): the cache key of a
    # consumer records the data versions of exactly the versions it read.
    _loaded_manifests: dict[int, tuple[Any, dict[str, Any]]] = PrivateAttr(default_factory=dict)
    # Outputs persisted for `in_run_handover="memory"`: released at the end of the run.
    _persisted: list[DataFrame] = PrivateAttr(default_factory=list)

    # -- in-run handover -------------------------------------------------------------------

    def track(self, persisted: DataFrame | None) -> DataFrame | None:
        """Keep a persisted output until the run ends (`teardown_after_execution`)."""
        if persisted is not None:
            self._persisted.append(persisted)
        return persisted

    def hand_over(self, stored: StoredVersion, persisted: DataFrame | None) -> None:
        """Serve a *published* version's consumers in this run from the persisted output it
        was written from (`in_run_handover="memory"`); never called for a rejected version."""
        if self.in_run_handover == "memory" and persisted is not None and stored.published:
            self._loaded[str(stored.path)] = persisted

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        """Release what this run persisted; forget the run's loaded versions."""
        from pysetl_dagster.spark.memory import release

        for persisted in self._persisted:
            release(persisted)
        self._persisted.clear()
        self._loaded.clear()

    # -- locations -------------------------------------------------------------------------

    def asset_dir(self, asset_key: AssetKey, partition_key: str | None = None) -> Location:
        path = Location(self.base_path.rstrip("/"))
        for part in asset_key.path:
            path = path / part
        return path / partition_folder(partition_key) if partition_key else path

    def filesystem(self) -> HadoopFS:
        """The Hadoop filesystem calls, on this process's SparkSession (started if none)."""
        return HadoopFS.of(active_session() or _spark())

    def versions_at(self, location: str) -> VersionStore:
        return VersionStore(self.filesystem(), location, self.lease_timeout_s)

    def current_version_path(
        self, asset_key: AssetKey, partition_key: str | None = None
    ) -> Location:
        """Where the current version of an asset is stored; raises if it was never written."""
        location = self.asset_dir(asset_key, partition_key)
        path, _ = self._current(location, f"Asset {asset_key.to_user_string()}")
        return path

    def _output_location(
        self, context: OutputContext, partition: str | None = None
    ) -> tuple[Location, AssetKey | None]:
        key = _asset_key_of_output(context)
        if key is not None:
            return self.asset_dir(key, partition), key
        run_dir = Location(self.base_path.rstrip("/")) / "_runs" / context.run_id
        return run_dir / context.step_key / context.name, None

    # -- IO manager ------------------------------------------------------------------------

    # -- write, audit, publish ---------------------------------------------------------------

    def write_version(
        self,
        asset_key: AssetKey | None,
        location: Location,
        value: Any,
        observe: list[Column] | None = None,
        *,
        run_id: str | None = None,
        label: str | None = None,
    ) -> StoredVersion:
        """Write a new version next to the current one, without making it current.

        `observe` aggregates (check failures, the row count) are computed by Spark during the
        write itself, with no extra job. The version is leased to this process until it is
        published, rejected or abandoned; a failed write removes what it wrote.
        """
        location = Location(location)
        store = self.versions_at(location)
        version = store.begin(run_id)
        target = location / version
        try:
            if isinstance(value, DataFrame):
                observation = Observation(f"pysetl_{uuid.uuid4().hex[:8]}")
                exprs = observe or [F.count(F.lit(1)).alias("__rows")]
                # The Factory's lazy plan (and the reads of its inputs) runs here: label it.
                with asset_scope(
                    value.sparkSession, run_id or "", label or str(location), f"store {version}"
                ):
                    start = time.perf_counter()
                    value.observe(observation, *exprs).write.mode("errorifexists").parquet(
                        qualified(target)
                    )
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
            store.fs.mkdirs(target)
            store.fs.write_bytes(target / "value.pickle", pickle.dumps(value))
        except BaseException:
            store.abandon(version)
            raise
        return StoredVersion(location, version, "pickle", asset_key)

    def publish(
        self, stored: StoredVersion, run_id: str, extra: Mapping[str, Any] | None = None
    ) -> StoredVersion:
        """Commit a written version (its record), make it current (atomic manifest switch) and
        prune old versions and orphans.

        `extra` fields (e.g. `cache_key`, `cache_parts`, `computed_by_run`) go into both the
        manifest and the version's record; they cannot override the version's own fields
        (`version`, `format`, `run_id`, `created_at`, `rows`, `schema`).
        """
        store = self.versions_at(stored.location)
        previous = store.manifest() or {}
        manifest: dict[str, Any] = {
            **(extra or {}),
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
        try:
            store.commit(stored.version, manifest)
            store.switch(manifest)
        finally:
            store.release(stored.version)
        store.prune(self.keep_versions, protect={stored.version})
        return replace(stored, published=True)

    def reject(self, stored: StoredVersion) -> Location:
        """Move a version that failed a blocking check aside, for inspection; never current."""
        return self.versions_at(stored.location).reject(stored.version, self.keep_versions)

    def abandon(self, stored: StoredVersion) -> None:
        """Remove a written version that will not be published (its audit failed to run)."""
        self.versions_at(stored.location).abandon(stored.version)

    def read_version(self, path: str, schema_json: str | None = None) -> DataFrame:
        """A stored Parquet version, lazily. With its schema known (the manifest keeps it),
        Spark skips schema inference, which would otherwise run a job over the files' footers."""
        reader = (active_session() or _spark()).read
        if schema_json:
            reader = reader.schema(StructType.fromJson(json.loads(schema_json)))
        return reader.parquet(qualified(str(path)))

    def current_manifest(
        self, asset_key: AssetKey, partition_key: str | None = None
    ) -> dict[str, Any] | None:
        return self._read_manifest(self.asset_dir(asset_key, partition_key))

    # -- versions (the cache's view of storage) ---------------------------------------------

    def list_versions(
        self, asset_key: AssetKey, partition_key: str | None = None
    ) -> list[dict[str, Any]]:
        """The records of an asset's (or partition's) complete, published versions, newest
        first: the manifest fields each was published with, plus `path` (its folder)."""
        return self.versions_at(self.asset_dir(asset_key, partition_key)).versions()

    def make_current(
        self, asset_key: AssetKey, partition_key: str | None, version: str, run_id: str
    ) -> StoredVersion:
        """Switch the manifest to an existing complete version, writing no data.

        The manifest keeps the version's record fields; `run_id` becomes the run that made it
        current, and `computed_by_run` defaults to the run that wrote it.
        """
        location = self.asset_dir(asset_key, partition_key)
        manifest = self.versions_at(location).make_current(version, run_id)
        return _stored_of(location, asset_key, manifest)

    def drop(
        self, asset_key: AssetKey, partition_key: str | None = None, version: str | None = None
    ) -> list[str]:
        """Delete one version, or everything stored for an asset (or one of its partitions).

        Dropping the current version removes the manifest too (the asset then reads as never
        materialized). Returns the deleted locations.
        """
        location = self.asset_dir(asset_key, partition_key)
        dropped = self.versions_at(location).drop(version)
        gone = str(location / version) if version else str(location)
        for path in [p for p in self._loaded if p == gone or p.startswith(gone + "/")]:
            del self._loaded[path]
        return dropped

    def partitions(self, asset_key: AssetKey) -> list[str]:
        """The partition keys stored for an asset ([] when it is not stored per partition)."""
        folders = partition_folders(self.filesystem(), self.asset_dir(asset_key))
        return sorted(partition_key_of(entry.name) for entry in folders)

    def location_for(self, context: OutputContext) -> tuple[Location, AssetKey | None]:
        partition = context.partition_key if context.has_partition_key else None
        return self._output_location(context, partition)

    # -- IO manager ------------------------------------------------------------------------

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        if obj is None:
            return
        if is_skipped(obj):  # a Stage op's skipped Factory: nothing to store (conditions.py)
            remember_skipped(context.run_id, context.step_key, context.name)
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
            tags = {}
            if stored.data_version is not None:
                tags[DATA_VERSION_TAG] = stored.data_version
                tags[DATA_VERSION_IS_USER_PROVIDED_TAG] = "true"
            if stored.code_version is not None:
                tags[CODE_VERSION_TAG] = stored.code_version
            context.log_event(
                AssetMaterialization(
                    asset_key=op_asset_key,
                    metadata={**run_metadata, **metadata},
                    tags=tags or None,
                )
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
            if was_skipped(upstream.run_id, upstream.step_key, upstream.name):
                return SKIPPED
            # The run's partition from the InputContext: reading it on `upstream_output` is
            # deprecated by Dagster (dagster-io/dagster#7900); both are the same run's key.
            partition = context.partition_key if context.has_partition_key else None
            location, key = self._output_location(upstream, partition)
        name = key.to_user_string() if key else context.name
        path, manifest = self._current(location, f"Input {context.name!r} needs {name}, which")
        note_input(context.step_context.step.key, name, manifest["version"])
        if manifest["format"] == "parquet":
            if str(path) not in self._loaded:
                spark = active_session() or _spark()
                run_id = context.step_context.run_id
                with asset_scope(spark, run_id, _label_of_input(context), f"load {name}"):
                    self._loaded[str(path)] = self.read_version(path, manifest.get("schema"))
            return self.note_loaded(self._loaded[str(path)], manifest)
        raw = self.filesystem().read_bytes(path / "value.pickle")
        if raw is None:
            raise PySetlStorageError(f"{name}: {path} has no value.pickle; materialize it again.")
        return self.note_loaded(pickle.loads(raw), manifest)

    def note_loaded(self, value: Any, manifest: dict[str, Any]) -> Any:
        """Remember which stored version a value handed to a consumer came from."""
        self._loaded_manifests[id(value)] = (value, manifest)  # the value is kept: ids stay
        return value

    def loaded_manifest(self, value: Any) -> dict[str, Any] | None:
        """The manifest of the stored version `value` was loaded from (None: not loaded here)."""
        entry = self._loaded_manifests.get(id(value))
        return entry[1] if entry is not None and entry[0] is value else None

    # -- cache ---------------------------------------------------------------------------

    def cache_records(
        self, asset_key: AssetKey, partition_key: str | None = None
    ) -> list[dict[str, Any]]:
        """Records of the stored versions a cache lookup may reuse, newest first (the current
        version first, whatever its age: its manifest carries the invalidation mark)."""
        current = self.current_manifest(asset_key, partition_key)
        records = self.list_versions(asset_key, partition_key)
        if current is None:
            return records
        invalidated = current.get("cache_invalidated_at")
        rest = [r for r in records if r.get("version") != current.get("version")]
        if invalidated:
            rest = [{**r, "cache_invalidated_at": invalidated} for r in rest]
        return [current, *rest]

    def stored_from_record(
        self, asset_key: AssetKey, partition_key: str | None, record: Mapping[str, Any]
    ) -> StoredVersion:
        """A stored, published version described by its manifest record (nothing is read)."""
        location = self.asset_dir(asset_key, partition_key)
        return replace(_stored_of(location, asset_key, record), cached=True)

    def invalidate(self, asset_key: AssetKey, partition_key: str | None = None) -> bool:
        """Make every stored version of an asset ineligible for reuse; the data stays current
        and readable until the next materialization replaces it. False: nothing stored."""
        location = self.asset_dir(asset_key, partition_key)
        manifest = self._read_manifest(location)
        if manifest is None:
            return False
        manifest["cache_invalidated_at"] = time.time()
        self._switch_manifest(location, manifest)
        return True

    def _load_partitions(self, context: InputContext) -> DataFrame:
        """Every stored partition of a partitioned upstream (an unpartitioned consumer reads
        them all): one lazy Parquet read over the partitions' current versions."""
        key = context.asset_key
        stored = set(self.partitions(key))
        versions = [
            (location / manifest["version"], manifest)
            for location in (
                self.asset_dir(key, k) for k in context.asset_partition_keys if k in stored
            )
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

    def _current(self, location: Location, what: str) -> tuple[Location, dict[str, Any]]:
        """The current version's folder and manifest, or an error saying to materialize first."""
        manifest = self._read_manifest(location)
        if manifest is None:
            raise PySetlStorageError(
                f"{what} has no stored output under {location}. Materialize it first "
                "(or include it in the selection)."
            )
        return Location(location) / manifest["version"], manifest

    def _read_manifest(self, location: Location) -> dict[str, Any] | None:
        return self.versions_at(location).manifest()

    def _switch_manifest(self, location: Location, manifest: dict[str, Any]) -> None:
        self.versions_at(location).switch(manifest)

    def _prune(self, location: Location, keep: str) -> None:
        self.versions_at(location).prune(self.keep_versions, protect={keep})


def _stored_of(
    location: Location, asset_key: AssetKey | None, manifest: Mapping[str, Any]
) -> StoredVersion:
    """A published version described by its manifest (or record)."""
    observed = {"__rows": manifest["rows"]} if manifest.get("rows") is not None else {}
    return StoredVersion(
        location,
        str(manifest["version"]),
        str(manifest.get("format", "parquet")),
        asset_key,
        observed,
        manifest.get("schema"),
        published=True,
    )


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
