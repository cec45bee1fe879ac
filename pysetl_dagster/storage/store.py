"""`PySetlStorage`: the version store as one typed Dagster resource.

Everything that reads or changes stored versions goes through it: the IO manager (a thin
Dagster adapter that holds one, `SparkParquetIOManager.store`), the Factory step (write, audit,
publish or reject), the cache (records, reuse, make current) and the CLI (list, show,
invalidate). It works on a `FileSystem` (`storage/filesystem.py`) chosen per call, so a
session started (or stopped) meanwhile is taken into account.

Choosing the filesystem backend (`filesystem=`, `filesystem_for`):

- `"hadoop"`: the Hadoop FileSystem of a classic SparkSession (started if none runs); an error
  under Spark Connect, which has no JVM.
- `"arrow"`: `pyarrow.fs`, never a JVM: local paths, `file://`, `s3://` (also read for
  `s3a://`), `gs://`, `hdfs://` with libhdfs.
- `"auto"` (the default), in this order:

  1. a Spark Connect session is active (or pyspark runs in remote mode): Arrow;
  2. a classic SparkSession is active: Hadoop, for any URI (Spark writes the data through the
     same client, configuration and credentials; what the tests of the Hadoop backend assert);
  3. no session: Arrow for a local path, `file://`, `s3://` or `gs://` (listing versions or
     reading a manifest, as the CLI does, starts no JVM); Hadoop for any other URI
     (`hdfs://`, `s3a://`, `abfs://`, ...), starting a local classic session as before.

Both backends see the same files, leases included, so a process may use one for a manifest
and the other later (e.g. Arrow before its session starts, Hadoop after).
"""

from __future__ import annotations

import json
import pickle
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import urlsplit

from dagster import AssetKey, ConfigurableResource
from pydantic import Field, PrivateAttr
from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from pysetl_dagster.errors import PySetlStorageError
from pysetl_dagster.spark.connect import connect_plan_metrics, is_connect_session
from pysetl_dagster.spark.labels import active_session, asset_scope
from pysetl_dagster.storage.arrow import ArrowFS
from pysetl_dagster.storage.filesystem import FileSystem, Location, has_scheme, qualified
from pysetl_dagster.storage.hadoop import HadoopFS
from pysetl_dagster.storage.versions import (
    VersionStore,
    partition_folder,
    partition_folders,
    partition_key_of,
)

StorageBackend = Literal["auto", "hadoop", "arrow"]
ARROW_SCHEMES = frozenset({"file", "s3", "gs", "gcs"})
"""URI schemes the Arrow backend serves when no SparkSession runs (`"auto"`, rule 3)."""


def active_spark() -> Any | None:
    """The SparkSession this process runs, classic or Connect; never starts one."""
    session = active_session()
    if session is not None:
        return session
    connect = sys.modules.get("pyspark.sql.connect.session")  # imported iff Connect is in use
    return connect.SparkSession.getActiveSession() if connect is not None else None


def has_jvm(spark: Any) -> bool:
    """Whether a session is a classic one (a JVM behind py4j), not a Spark Connect client."""
    return getattr(spark, "_jsc", None) is not None


def _remote_mode() -> bool:
    try:
        from pyspark.sql.utils import is_remote
    except ImportError:  # pragma: no cover - every supported pyspark has it
        return False
    return bool(is_remote())


def backend_for(
    location: str, spark: Any | None = None, kind: StorageBackend = "auto"
) -> Literal["hadoop", "arrow"]:
    """Which backend serves `location` (the rule is in the module docstring); starts nothing."""
    if kind != "auto":
        return kind
    spark = spark if spark is not None else active_spark()
    if spark is not None:
        return "hadoop" if has_jvm(spark) else "arrow"
    if _remote_mode():
        return "arrow"
    scheme = urlsplit(qualified(location)).scheme if has_scheme(location) else "file"
    return "arrow" if scheme in ARROW_SCHEMES else "hadoop"


def filesystem_for(
    location: str,
    spark: Any | None = None,
    *,
    kind: StorageBackend = "auto",
    arrow: ArrowFS | None = None,
) -> FileSystem:
    """The filesystem for a storage location, from the URI and the session kind.

    `arrow` is the caller's `ArrowFS` (it keeps one object-store client per bucket); a new
    one is made if none is given. Hadoop reuses the one `HadoopFS` of the SparkContext.
    """
    spark = spark if spark is not None else active_spark()
    if backend_for(location, spark, kind) == "arrow":
        return arrow if arrow is not None else ArrowFS()
    if spark is None:
        spark = SparkSession.builder.getOrCreate()
    return HadoopFS.of(spark)


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
    spark_metrics: Mapping[str, int] = field(default_factory=dict)
    """Spark Connect: what the write's `ExecutionInfo` reported (plan metrics); classic
    sessions read theirs from Spark's status store instead."""

    @property
    def path(self) -> Location:
        return Location(self.location) / self.version

    @property
    def rows(self) -> int | None:
        rows = self.observed.get("__rows")
        return int(rows) if rows is not None else None


def stored_of(
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


def _spark() -> Any:
    return active_spark() or SparkSession.builder.getOrCreate()


class PySetlStorage(ConfigurableResource):
    """Versioned storage of asset outputs: write, audit, publish or reject, list, make
    current, drop; leases and retention. See `pysetl_dagster.storage.versions` for the layout
    and guarantees, and this module's docstring for the filesystem backend rule."""

    base_path: str = Field(description="Root folder (local path or URI) of all stored outputs.")
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
        description="Filesystem backend: 'hadoop' (the classic SparkSession's Hadoop "
        "FileSystem), 'arrow' (pyarrow.fs, no JVM: what Spark Connect needs) or 'auto' (from "
        "the URI and the session kind; see pysetl_dagster.storage.store).",
    )

    _arrow: ArrowFS | None = PrivateAttr(default=None)

    # -- filesystem ------------------------------------------------------------------------

    def backend(self, location: str | None = None) -> Literal["hadoop", "arrow"]:
        """Which backend a call on `location` (default: the root) uses now; starts nothing."""
        return backend_for(location or self.base_path, kind=self.filesystem)

    def fs(self, location: str | None = None) -> FileSystem:
        """The filesystem for `location` (default: the root), chosen per call."""
        if self._arrow is None:
            self._arrow = ArrowFS()
        return filesystem_for(location or self.base_path, kind=self.filesystem, arrow=self._arrow)

    def versions_at(self, location: str) -> VersionStore:
        """The `VersionStore` of one asset (or partition) folder, on the filesystem backend
        chosen for that location: what every version operation below works through."""
        return VersionStore(self.fs(location), location, self.lease_timeout_seconds)

    # -- locations -------------------------------------------------------------------------

    def asset_dir(self, asset_key: AssetKey, partition_key: str | None = None) -> Location:
        """The folder of an asset's versions: `<root>/<key path>[/<escaped partition>]`."""
        path = Location(self.base_path.rstrip("/"))
        for part in asset_key.path:
            path = path / part
        return path / partition_folder(partition_key) if partition_key else path

    def current(self, location: str, what: str) -> tuple[Location, dict[str, Any]]:
        """The current version's folder and manifest, or an error saying to materialize first."""
        manifest = self.read_manifest(location)
        if manifest is None:
            raise PySetlStorageError(
                f"{what} has no stored output under {location}. Materialize it first "
                "(or include it in the selection)."
            )
        return Location(location) / manifest["version"], manifest

    def current_version_path(
        self, asset_key: AssetKey, partition_key: str | None = None
    ) -> Location:
        """Where the current version of an asset is stored; raises if it was never written."""
        location = self.asset_dir(asset_key, partition_key)
        path, _ = self.current(location, f"Asset {asset_key.to_user_string()}")
        return path

    def read_manifest(self, location: str) -> dict[str, Any] | None:
        """The manifest (`_current.json`) of a folder, or None when nothing was published."""
        return self.versions_at(location).manifest()

    def switch_manifest(self, location: str, manifest: Mapping[str, Any]) -> None:
        """Replace a folder's manifest atomically: the one step that publishes a version."""
        self.versions_at(location).switch(manifest)

    def current_manifest(
        self, asset_key: AssetKey, partition_key: str | None = None
    ) -> dict[str, Any] | None:
        """The manifest readers get now for an asset (and partition), or None when it was never
        published: the version, schema, rows, producing run and the cache key."""
        return self.read_manifest(self.asset_dir(asset_key, partition_key))

    # -- write, audit, publish -------------------------------------------------------------

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
                    observed = value.observe(observation, *exprs)
                    observed.write.mode("error").parquet(qualified(target))
                    write_s = time.perf_counter() - start
                return StoredVersion(
                    location,
                    version,
                    "parquet",
                    asset_key,
                    dict(observation.get),
                    value.schema.json(),
                    write_s=write_s,
                    spark_metrics=(
                        connect_plan_metrics(observed.executionInfo)
                        if is_connect_session(value.sparkSession)
                        else {}
                    ),
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

    # -- reading ---------------------------------------------------------------------------

    def read_version(self, path: str, schema_json: str | None = None) -> DataFrame:
        """A stored Parquet version, lazily. With its schema known (the manifest keeps it),
        Spark skips schema inference, which would otherwise run a job over the files' footers."""
        reader = _spark().read
        if schema_json:
            reader = reader.schema(StructType.fromJson(json.loads(schema_json)))
        return reader.parquet(qualified(str(path)))  # type: ignore[no-any-return]

    def read_pickle(self, path: str, what: str) -> Any:
        """A stored non-DataFrame value (`<version>/value.pickle`); `what` names the asset."""
        raw = self.fs(path).read_bytes(Location(path) / "value.pickle")
        if raw is None:
            raise PySetlStorageError(f"{what}: {path} has no value.pickle; materialize it again.")
        return pickle.loads(raw)

    # -- versions (the cache's and the CLI's view of storage) ------------------------------

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
        return stored_of(location, asset_key, manifest)

    def drop(
        self, asset_key: AssetKey, partition_key: str | None = None, version: str | None = None
    ) -> list[str]:
        """Delete one version, or everything stored for an asset (or one of its partitions).

        Dropping the current version removes the manifest too (the asset then reads as never
        materialized). Returns the deleted locations.
        """
        return self.versions_at(self.asset_dir(asset_key, partition_key)).drop(version)

    def partitions(self, asset_key: AssetKey) -> list[str]:
        """The partition keys stored for an asset ([] when it is not stored per partition)."""
        location = self.asset_dir(asset_key)
        folders = partition_folders(self.fs(location), location)
        return sorted(partition_key_of(entry.name) for entry in folders)

    def invalidate(self, asset_key: AssetKey, partition_key: str | None = None) -> bool:
        """Make every stored version of an asset ineligible for reuse; the data stays current
        and readable until the next materialization replaces it. False: nothing stored."""
        location = self.asset_dir(asset_key, partition_key)
        manifest = self.read_manifest(location)
        if manifest is None:
            return False
        manifest["cache_invalidated_at"] = time.time()
        self.switch_manifest(location, manifest)
        return True

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
        return replace(stored_of(location, asset_key, record), cached=True)
