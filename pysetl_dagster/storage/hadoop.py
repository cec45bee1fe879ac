"""The Hadoop backend of the storage `FileSystem`: the classic SparkSession's JVM, via py4j.

Every call goes through the Hadoop `FileSystem` of the JVM that Spark runs, so a storage root
may be a local path, `file:///...`, `hdfs://...`, `s3a://...` or `abfs://...` (with the
connector on the classpath): whatever Spark itself can write, with the same credentials.
A local path is always the local filesystem (the raw one: no `.crc` side files), never the
cluster's default filesystem. Atomic replace: `rename(2)` locally, `FileContext.rename
(OVERWRITE)` elsewhere (atomic on HDFS; on object stores a small object is replaced whole).
Spark Connect sessions have no JVM: they use `ArrowFS` (`storage/arrow.py`).
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from typing import Any
from urllib.parse import urlsplit

from pyspark.sql import SparkSession

from pysetl_dagster.storage.filesystem import (
    FILE_MODE,
    TMP_PREFIX,
    Entry,
    Location,
    json_object,
    qualified,
)

_CHUNK = 8 << 20


class HadoopFS:
    """Filesystem calls through the Hadoop FileSystem API of a running SparkSession."""

    kind = "hadoop"

    def __init__(self, spark: SparkSession) -> None:
        jsc = getattr(spark, "_jsc", None)
        if jsc is None:
            raise RuntimeError(
                "pysetl-dagster's Hadoop storage backend needs a classic SparkSession (the "
                "Hadoop FileSystem API of its JVM); a Spark Connect session has none: use "
                'filesystem="arrow" (or "auto") on SparkParquetIOManager / PySetlStorage.'
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
        return json_object(self.read_bytes(location))

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
