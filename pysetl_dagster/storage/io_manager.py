"""Persisting Factory outputs: Spark writes Parquet, nothing is collected to the driver.

`SparkParquetIOManager` is a thin Dagster adapter over `PySetlStorage` (`storage/store.py`),
which does all the version work (write, publish, reject, list, make current, drop, leases,
retention) over a filesystem backend chosen from the storage URI and the session kind. The IO
manager builds its store from its own fields (`store`), records outputs (`handle_output`),
loads inputs (`load_input`) and serves in-run handover; its version-API methods are
delegates of the store's, kept so that existing callers work.

Layout under `base_path` (a local path or a URI), one folder per asset key, one more level
per partition if any::

    <asset>[/<partition>]/_current.json                 which version readers get
    <asset>[/<partition>]/<version>/                    Parquet dataset (or value.pickle)
    <asset>[/<partition>]/<version>/_pysetl_version.json  the version's record (commit marker)

A version is written completely, then its record, before `_current.json` is switched to it
with an atomic rename, so a run that crashes mid-write leaves the previous output readable and
current. See `pysetl_dagster.storage.versions` for the guarantees.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Mapping
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
from pydantic import Field, PrivateAttr, model_validator
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql.types import StructType

from pysetl_dagster.automation.conditions import SKIPPED, is_skipped
from pysetl_dagster.errors import PySetlFactoryError, PySetlStorageError
from pysetl_dagster.metadata import MetadataKey
from pysetl_dagster.spark.connect import (
    CONNECT_UNAVAILABLE,
    is_connect_session,
    lost_server_note,
)
from pysetl_dagster.spark.labels import asset_scope, step_tag
from pysetl_dagster.spark.memory import release
from pysetl_dagster.spark.metrics import (
    failed_spark_work,
    spark_metrics,
    spark_plan,
    spark_ui_url,
    split_spark_error,
)
from pysetl_dagster.storage.filesystem import Location
from pysetl_dagster.storage.loaded_inputs import loaded_inputs, note_input
from pysetl_dagster.storage.store import (
    PySetlStorage,
    StorageBackend,
    StoredVersion,
    active_spark,
)
from pysetl_dagster.storage.versions import MANIFEST, REJECTED, VersionStore

__all__ = ["MANIFEST", "REJECTED", "Location", "PySetlStorage", "StoredVersion"]
ASSET_KEY_METADATA = MetadataKey.ASSET_KEY
"""Op outputs carrying this definition metadata are stored (and recorded) as that asset."""


def schema_hash(schema_json: str) -> str:
    """A short hash of a Spark schema: equal hashes, equal columns and types."""
    import hashlib

    return hashlib.sha256(schema_json.encode()).hexdigest()[:16]


def table_schema_of_struct(schema: StructType) -> TableSchema:
    return TableSchema(
        columns=[TableColumn(name=f.name, type=f.dataType.simpleString()) for f in schema.fields]
    )


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
    lease_timeout_seconds: float = Field(
        default=300.0,
        gt=60,
        description="A version being written by a writer on another host whose lease was not "
        "refreshed for this long is an orphan (on the same host: as soon as the writer "
        "process is gone).",
    )
    filesystem: StorageBackend = Field(
        default="auto",
        description="Storage filesystem backend: 'hadoop' (the classic SparkSession's Hadoop "
        "FileSystem), 'arrow' (pyarrow.fs, no JVM: what Spark Connect needs) or 'auto' (from "
        "the URI and the session kind; see pysetl_dagster.storage.store).",
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
    cache_ttl_seconds: float | None = Field(
        default=None,
        gt=0,
        description="Default time-to-live of stored versions for the cache, in seconds "
        "(a Factory's `cache_ttl` overrides it). None: versions never expire.",
    )
    input_fingerprint: Literal["stat", "content"] = Field(
        default="stat",
        description="How the cache key sees local files named by external inputs: 'stat' "
        "(size, mtime, ctime, inode, device: no read) or 'content' (their bytes hashed; an "
        "input's class can ask for it alone with `pysetl_content_hash = True`). Remote files "
        "count by their filesystem's checksum where there is one.",
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

    @model_validator(mode="before")
    @classmethod
    def _renamed_fields(cls, data: Any) -> Any:
        """Accept the fields' names before `*_seconds` (one release), with a warning."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for old, new in _RENAMED.items():
            if old in data:
                warnings.warn(
                    f"SparkParquetIOManager({old}=...) is deprecated: use {new}=...",
                    DeprecationWarning,
                    stacklevel=_callers_level(),
                )
                data.setdefault(new, data.pop(old))
        return data

    @property
    def cache_ttl_s(self) -> float | None:
        """Deprecated alias of `cache_ttl_seconds` (read-only)."""
        return self.cache_ttl_seconds

    @property
    def lease_timeout_s(self) -> float:
        """Deprecated alias of `lease_timeout_seconds` (read-only)."""
        return self.lease_timeout_seconds

    @property
    def store(self) -> PySetlStorage:
        """The storage resource this IO manager works on, built from its fields."""
        if self._store is None:
            self._store = PySetlStorage(
                base_path=self.base_path,
                keep_versions=self.keep_versions,
                lease_timeout_seconds=self.lease_timeout_seconds,
                filesystem=self.filesystem,
            )
        return self._store

    _store: PySetlStorage | None = PrivateAttr(default=None)
    # A version folder never changes once written, so within a run a DataFrame read from it can
    # serve every consumer: one file listing and footer read instead of one per consumer.
    _loaded: dict[str, DataFrame] = PrivateAttr(default_factory=dict)
    # The manifest each loaded value was read from (by id of the value): the cache key of a
    # consumer records the data versions of exactly the versions it read.
    _loaded_manifests: dict[int, tuple[Any, dict[str, Any]]] = PrivateAttr(default_factory=dict)
    # Stage-op outputs of Factories skipped in this run (their consumers skip themselves).
    _skipped: set[tuple[str, str]] = PrivateAttr(default_factory=set)
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
        for persisted in self._persisted:
            release(persisted)
        self._persisted.clear()
        self._loaded.clear()
        self._skipped.clear()

    # -- the store's version API (delegates: callers should use `store`) --------------------

    def asset_dir(self, asset_key: AssetKey, partition_key: str | None = None) -> Location:
        """See `PySetlStorage.asset_dir`: the folder of an asset (and partition)."""
        return self.store.asset_dir(asset_key, partition_key)

    def versions_at(self, location: str) -> VersionStore:
        """See `PySetlStorage.versions_at`: the version store of one asset folder."""
        return self.store.versions_at(location)

    def current_version_path(
        self, asset_key: AssetKey, partition_key: str | None = None
    ) -> Location:
        """Where the current version of an asset is stored; raises if it was never written."""
        return self.store.current_version_path(asset_key, partition_key)

    def current_manifest(
        self, asset_key: AssetKey, partition_key: str | None = None
    ) -> dict[str, Any] | None:
        """See `PySetlStorage.current_manifest`: what readers get now, or None."""
        return self.store.current_manifest(asset_key, partition_key)

    def write_version(
        self,
        asset_key: AssetKey | None,
        location: str,
        value: Any,
        observe: list[Column] | None = None,
        *,
        run_id: str | None = None,
        label: str | None = None,
    ) -> StoredVersion:
        """See `PySetlStorage.write_version`."""
        return self.store.write_version(
            asset_key, location, value, observe, run_id=run_id, label=label
        )

    def publish(
        self, stored: StoredVersion, run_id: str, extra: Mapping[str, Any] | None = None
    ) -> StoredVersion:
        """See `PySetlStorage.publish`."""
        return self.store.publish(stored, run_id, extra)

    def reject(self, stored: StoredVersion) -> Location:
        """See `PySetlStorage.reject`: move a version that failed a blocking check aside."""
        return self.store.reject(stored)

    def abandon(self, stored: StoredVersion) -> None:
        """See `PySetlStorage.abandon`: drop an unpublished version (a failed step)."""
        self.store.abandon(stored)

    def read_version(self, path: str, schema_json: str | None = None) -> DataFrame:
        """See `PySetlStorage.read_version`: a stored version as a lazy DataFrame."""
        return self.store.read_version(path, schema_json)

    def list_versions(
        self, asset_key: AssetKey, partition_key: str | None = None
    ) -> list[dict[str, Any]]:
        """See `PySetlStorage.list_versions`: the complete versions, newest first."""
        return self.store.list_versions(asset_key, partition_key)

    def make_current(
        self, asset_key: AssetKey, partition_key: str | None, version: str, run_id: str
    ) -> StoredVersion:
        """See `PySetlStorage.make_current`: roll back (or forward) to a stored version."""
        return self.store.make_current(asset_key, partition_key, version, run_id)

    def drop(
        self, asset_key: AssetKey, partition_key: str | None = None, version: str | None = None
    ) -> list[str]:
        """See `PySetlStorage.drop`; also forgets the dropped versions loaded in this run."""
        dropped = self.store.drop(asset_key, partition_key, version)
        location = self.asset_dir(asset_key, partition_key)
        gone = str(location / version) if version else str(location)
        for path in [p for p in self._loaded if p == gone or p.startswith(gone + "/")]:
            del self._loaded[path]
        return dropped

    def partitions(self, asset_key: AssetKey) -> list[str]:
        """See `PySetlStorage.partitions`: the partition keys stored for an asset."""
        return self.store.partitions(asset_key)

    def invalidate(self, asset_key: AssetKey, partition_key: str | None = None) -> bool:
        """See `PySetlStorage.invalidate`: make stored versions ineligible for reuse."""
        return self.store.invalidate(asset_key, partition_key)

    def cache_records(
        self, asset_key: AssetKey, partition_key: str | None = None
    ) -> list[dict[str, Any]]:
        """See `PySetlStorage.cache_records`: the cache keys of the stored versions."""
        return self.store.cache_records(asset_key, partition_key)

    def stored_from_record(
        self, asset_key: AssetKey, partition_key: str | None, record: Mapping[str, Any]
    ) -> StoredVersion:
        """See `PySetlStorage.stored_from_record`: a cache hit as a `StoredVersion`."""
        return self.store.stored_from_record(asset_key, partition_key, record)

    # -- locations of outputs --------------------------------------------------------------

    def _output_location(
        self, context: OutputContext, partition: str | None = None
    ) -> tuple[Location, AssetKey | None]:
        key = _asset_key_of_output(context)
        if key is not None:
            return self.asset_dir(key, partition), key
        run_dir = Location(self.base_path.rstrip("/")) / "_runs" / context.run_id
        return run_dir / context.step_key / context.name, None

    def location_for(self, context: OutputContext) -> tuple[Location, AssetKey | None]:
        """Where an output goes: its asset's folder (and partition), or, for an op output
        that is no asset, a per-run folder under `_runs/`; with the asset key when there is one."""
        partition = context.partition_key if context.has_partition_key else None
        return self._output_location(context, partition)

    # -- IO manager ------------------------------------------------------------------------

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        """Store a step's output as a new version and publish it (Dagster calls this).

        A `StoredVersion` (the Factory step already wrote and audited it) is not written again,
        only published if it is not yet; a Stage op's skipped Factory stores nothing; any other
        value is written, then published atomically, so a failed write leaves the previous
        version current. A Stage op's output is also recorded as its Factory's asset."""
        if obj is None:
            return
        if is_skipped(obj):  # a Stage op's skipped Factory: nothing to store (conditions.py)
            self._skipped.add((context.step_key, context.name))
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
                context.add_output_metadata(
                    self.spark_metadata(obj, context.run_id, label, stored=stored)
                )
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

    def spark_metadata(
        self, df: DataFrame, run_id: str, label: str, stored: StoredVersion | None = None
    ) -> dict[str, Any]:
        """What Spark did for one output (metrics by the step's tag; on Spark Connect, what
        the write observed and reported, and what it could not) and, in debug mode, its plan.
        """
        metadata: dict[str, Any] = {}
        spark = df.sparkSession
        if self.debug_plans:
            metadata["spark/plan"] = MetadataValue.md(f"```\n{spark_plan(df)}\n```")
        if not self.spark_metrics:
            return metadata
        if is_connect_session(spark):
            figures = dict(stored.spark_metrics) if stored is not None else {}
            if stored is not None and stored.rows is not None:
                figures["spark/output_records"] = stored.rows
            metadata.update({k: MetadataValue.int(v) for k, v in sorted(figures.items())})
            metadata[MetadataKey.SPARK_UNAVAILABLE] = MetadataValue.text(CONNECT_UNAVAILABLE)
        else:
            metadata.update(_metrics_metadata(spark, step_tag(run_id, label)))
        return metadata

    def version_metadata(self, stored: StoredVersion) -> dict[str, Any]:
        """The metadata a stored version contributes to its materialization: path, storage
        version, column schema and its hash, row count and store time (the UI shows and plots
        them; the schema hash lets the drift check compare versions)."""
        metadata: dict[str, Any] = {
            "path": MetadataValue.path(str(stored.path)),
            MetadataKey.STORAGE_VERSION: MetadataValue.text(stored.version),
        }
        if stored.schema_json is not None:
            metadata["dagster/column_schema"] = table_schema_of_struct(
                StructType.fromJson(json.loads(stored.schema_json))
            )
            metadata[MetadataKey.SCHEMA_HASH] = MetadataValue.text(schema_hash(stored.schema_json))
        if stored.rows is not None:
            metadata["dagster/row_count"] = MetadataValue.int(stored.rows)
        if stored.write_s is not None:
            metadata[MetadataKey.STORE_S] = MetadataValue.float(round(stored.write_s, 4))
        return metadata

    def load_input(self, context: InputContext) -> Any:
        """Read an upstream output for a consumer (Dagster calls this): its current stored
        version as a lazy DataFrame (schema from the manifest: no inference job; read once per
        run and shared by every consumer), every stored partition at once for an unpartitioned
        consumer, or the skip marker of a Factory a Stage op skipped in this run. The version
        read is noted, for the cache key and error messages."""
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
            if (upstream.step_key, upstream.name) in self._skipped:
                return SKIPPED
            # The run's partition from the InputContext: reading it on `upstream_output` is
            # deprecated by Dagster (dagster-io/dagster#7900); both are the same run's key.
            partition = context.partition_key if context.has_partition_key else None
            location, key = self._output_location(upstream, partition)
        name = key.to_user_string() if key else context.name
        path, manifest = self.store.current(location, f"Input {context.name!r} needs {name}, which")
        note_input(context.step_context.step.key, name, manifest["version"])
        if manifest["format"] == "parquet":
            if str(path) not in self._loaded:
                spark = active_spark() or SparkSession.builder.getOrCreate()
                run_id = context.step_context.run_id
                with asset_scope(spark, run_id, _label_of_input(context), f"load {name}"):
                    self._loaded[str(path)] = self.read_version(path, manifest.get("schema"))
            return self.note_loaded(self._loaded[str(path)], manifest)
        return self.note_loaded(self.store.read_pickle(path, name), manifest)

    def note_loaded(self, value: Any, manifest: dict[str, Any]) -> Any:
        """Remember which stored version a value handed to a consumer came from."""
        self._loaded_manifests[id(value)] = (value, manifest)  # the value is kept: ids stay
        return value

    def loaded_manifest(self, value: Any) -> dict[str, Any] | None:
        """The manifest of the stored version `value` was loaded from (None: not loaded here)."""
        entry = self._loaded_manifests.get(id(value))
        return entry[1] if entry is not None and entry[0] is value else None

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
            if (manifest := self.store.read_manifest(location)) is not None
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
        spark = active_spark() or SparkSession.builder.getOrCreate()
        reader = spark.read
        schema = versions[-1][1].get("schema")
        if schema:
            reader = reader.schema(StructType.fromJson(json.loads(schema)))
        run_id = context.step_context.run_id
        with asset_scope(spark, run_id, _label_of_input(context), f"load {name}"):
            return reader.parquet(*(str(path) for path, _ in versions))


def _callers_level() -> int:
    """The `stacklevel` of the first frame outside Dagster, pydantic and this module: the
    deprecation warning then names the line that constructed the IO manager."""
    frame, level = sys._getframe(2), 2
    while frame.f_back is not None and (
        frame.f_code.co_filename == __file__
        or any(part in frame.f_code.co_filename for part in ("/dagster/", "/pydantic/"))
    ):
        frame, level = frame.f_back, level + 1
    return level


_RENAMED = {"lease_timeout_s": "lease_timeout_seconds", "cache_ttl_s": "cache_ttl_seconds"}


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
    factory = (context.op_def.tags or {}).get(MetadataKey.FACTORY, context.step_key)
    stage = (context.op_def.tags or {}).get(MetadataKey.STAGE)
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
    lost = lost_server_note(spark, exc)
    if lost:
        lines.insert(0, lost)
    if trace:
        lines.append("--- JVM stack trace ---\n" + trace)
    return "\n".join(lines)
