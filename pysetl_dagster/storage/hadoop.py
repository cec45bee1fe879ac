"""Versioned storage over Spark's Hadoop FileSystem API: one code path for every filesystem.

Every storage operation (mkdirs, list, read/write of manifests and records, renames, deletes)
goes through the Hadoop `FileSystem` of the JVM that Spark runs (py4j), so a storage root may
be a local path, `file:///...`, `hdfs://...` or `s3a://...` (with the connector on the
classpath): whatever Spark itself can write.

Layout under an asset's folder (`<root>/<asset key path>[/<partition>]`)::

    _current.json                      the manifest: which version readers get
    <version>/                         a Parquet dataset (or value.pickle)
    <version>/_pysetl_version.json     the version's record; written last: the commit marker
    _writing-<version>.json            the writer's lease while the version is being written
    _rejected/<version>/               versions that failed a blocking check
    <partition>/...                    the same layout, per partition (partitioned assets)

Guarantees:

- A version folder without its record is incomplete: readers never get it (the manifest only
  ever names committed versions) and retention does not count it.
- Records, manifests and leases are written to a temporary file and renamed over the target:
  `rename(2)` on the local filesystem, `FileContext.rename(OVERWRITE)` elsewhere (atomic on
  HDFS; on object stores a single small object is replaced as a whole). A reader sees the old
  manifest or the new one, never a partial one. Files are made 0644: other users read them.
- A writer holds a lease (host, pid, process start time, heartbeat) on its version until the
  version is published or rejected. A version folder with no record is an orphan, removed by
  the next write of that asset (or partition), when its lease is missing or dead: on the same
  host, the writer process is gone (checked by pid and start time, at once); on another host,
  the heartbeat (every `heartbeat_s`) is older than `lease_timeout_s`.
"""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from typing import Any
from urllib.parse import urlsplit

from pyspark.sql import SparkSession

from pysetl_dagster.storage.filesystem import FILE_MODE, TMP_PREFIX, Entry, Location, qualified

_CHUNK = 8 << 20


class HadoopFS:
    """Filesystem calls through the Hadoop FileSystem API of a running SparkSession."""

    def __init__(self, spark: SparkSession) -> None:
        jsc = getattr(spark, "_jsc", None)
        if jsc is None:
            raise RuntimeError(
                "pysetl-dagster storage needs a classic SparkSession (the Hadoop FileSystem API "
                "of its JVM); Spark Connect sessions cannot reach it."
            )
        jvm: Any = spark._jvm
        self._jvm = jvm
        self._gateway: Any = spark.sparkContext._gateway
        self._conf = jsc.hadoopConfiguration()
        # each py4j attribute of a package path is a round trip: resolve classes once
        hadoop_fs: Any = jvm.org.apache.hadoop.fs
        self._Path: Any = hadoop_fs.Path
        self._FileContext: Any = hadoop_fs.FileContext
        self._Rename: Any = hadoop_fs.Options.Rename
        self._FsPermission: Any = hadoop_fs.permission.FsPermission
        self._filesystems: dict[str, Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def of(cls, spark: SparkSession) -> HadoopFS:
        """The one instance for a SparkContext (it caches classes and filesystems)."""
        sc = spark.sparkContext
        fs = getattr(sc, "_pysetl_hadoop_fs", None)
        if fs is None:
            fs = cls(spark)
            sc._pysetl_hadoop_fs = fs  # type: ignore[attr-defined]
        return fs

    def _path(self, location: str) -> Any:
        return self._Path(qualified(location))

    def _fs(self, location: str) -> Any:
        parts = urlsplit(qualified(location))
        root = f"{parts.scheme}://{parts.netloc}"
        with self._lock:
            fs = self._filesystems.get(root)
        if fs is None:
            if parts.scheme == "file":
                # the raw local filesystem: no .crc side files, rename(2) replaces atomically
                fs = self._jvm.org.apache.hadoop.fs.FileSystem.getLocal(self._conf).getRaw()
            else:
                fs = self._Path(root + "/").getFileSystem(self._conf)
            with self._lock:
                self._filesystems[root] = fs
        return fs

    def exists(self, location: str) -> bool:
        return bool(self._fs(location).exists(self._path(location)))

    def mkdirs(self, location: str) -> None:
        self._fs(location).mkdirs(self._path(location))

    def list(self, location: str) -> list[Entry]:
        """The children of a folder ([] when it does not exist)."""
        fs, path = self._fs(location), self._path(location)
        try:
            statuses = fs.listStatus(path)
        except Exception as exc:
            if "FileNotFoundException" in str(exc):
                return []
            raise
        base = Location(location)
        return [
            Entry(
                s.getPath().getName(),
                base / s.getPath().getName(),
                bool(s.isDirectory()),
                s.getModificationTime() / 1000.0,
            )
            for s in statuses
        ]

    def read_bytes(self, location: str) -> bytes | None:
        """A file's content, None when it does not exist."""
        fs, path = self._fs(location), self._path(location)
        try:
            stream = fs.open(path)
        except Exception as exc:
            if "FileNotFoundException" in str(exc):
                return None
            raise
        try:
            return bytes(stream.readAllBytes())
        finally:
            stream.close()

    def read_json(self, location: str) -> dict[str, Any] | None:
        raw = self.read_bytes(location)
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def write_bytes(self, location: str, data: bytes, *, overwrite: bool = False) -> None:
        fs, path = self._fs(location), self._path(location)
        stream = fs.create(path, overwrite)
        try:
            for start in range(0, len(data), _CHUNK):
                stream.write(bytearray(data[start : start + _CHUNK]))
        finally:
            stream.close()

    def write_atomic(self, location: str, data: bytes) -> None:
        """Write to a temporary sibling, make it 0644, rename it over `location`."""
        target = Location(location)
        tmp = target.parent / f"{TMP_PREFIX}{uuid.uuid4().hex[:12]}-{target.name}"
        self.write_bytes(tmp, data)
        fs = self._fs(tmp)
        with contextlib.suppress(Exception):  # object stores have no permissions
            fs.setPermission(self._path(tmp), self._FsPermission(FILE_MODE))
        try:
            self._replace(tmp, target)
        except Exception:
            self.delete(tmp)
            raise

    def _replace(self, src: str, dst: str) -> None:
        if urlsplit(qualified(src)).scheme == "file":
            if not self._fs(src).rename(self._path(src), self._path(dst)):
                raise OSError(f"could not rename {src} to {dst}")
            return
        # atomic on HDFS; FileSystem.rename would refuse an existing target
        options = self._gateway.new_array(self._Rename, 1)
        options[0] = self._Rename.OVERWRITE
        context = self._FileContext.getFileContext(self._path(dst).toUri(), self._conf)
        context.rename(self._path(src), self._path(dst), options)

    def rename(self, src: str, dst: str) -> None:
        """Move a file or folder to a new name (which must not exist)."""
        fs = self._fs(src)
        if not fs.rename(self._path(src), self._path(dst)):
            raise OSError(f"could not rename {src} to {dst}")

    def delete(self, location: str) -> bool:
        return bool(self._fs(location).delete(self._path(location), True))
