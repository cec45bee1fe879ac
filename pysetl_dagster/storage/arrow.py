"""The JVM-free backend of the storage `FileSystem`: `pyarrow.fs`.

Local paths and `file://` URIs go to pyarrow's `LocalFileSystem` (plus `os` for the two calls
whose semantics matter: `os.replace` for the atomic manifest switch, `os.chmod` for 0644);
other URIs to `pyarrow.fs.FileSystem.from_uri` (`s3://`, `gs://`, `hdfs://` when libhdfs is
installed; Hadoop's `s3a://`/`s3n://` are read as `s3://`). One filesystem client per
scheme and authority, created on first use. Paths are used literally, like Hadoop does: a
partition folder named `2024-01-01-00%3A00` is that name on disk with either backend.

Guarantees, per filesystem:

- local: `write_atomic` is `os.replace` of a 0644 temporary sibling (`rename(2)`, atomic);
  `rename` is `os.rename` after checking the target does not exist.
- object stores: the temporary object is moved (copied) over the target, which is replaced as
  a whole: readers see the old object or the new one. A folder rename (rejecting a version) is
  a copy and a delete, as with Hadoop's S3A.
- `hdfs://` through libhdfs: pyarrow's move deletes an existing target first, so a manifest
  switch leaves a short window with no manifest; the Hadoop backend (chosen automatically when
  a classic SparkSession is available) has no such window.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import threading
import uuid
from typing import Any
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from pysetl_dagster.storage.filesystem import (
    FILE_MODE,
    TMP_PREFIX,
    Entry,
    Location,
    json_object,
    qualified,
)

_SCHEME_ALIASES = {"s3a": "s3", "s3n": "s3"}


class ArrowFS:
    """Filesystem calls through `pyarrow.fs`: no SparkSession, no JVM."""

    kind = "arrow"

    def __init__(self) -> None:
        self._local = pafs.LocalFileSystem()
        self._filesystems: dict[str, tuple[pafs.FileSystem, str]] = {}
        self._lock = threading.Lock()

    def _resolve(self, location: str) -> tuple[pafs.FileSystem, str, bool]:
        """(filesystem, path on it, whether it is the local filesystem)."""
        parts = urlsplit(qualified(location))
        if parts.scheme == "file":
            return self._local, parts.path or "/", True
        scheme = _SCHEME_ALIASES.get(parts.scheme, parts.scheme)
        root = f"{scheme}://{parts.netloc}/" + (f"?{parts.query}" if parts.query else "")
        with self._lock:
            known = self._filesystems.get(root)
        if known is None:
            try:
                known = pafs.FileSystem.from_uri(root)
            except (ValueError, OSError, NotImplementedError) as exc:
                raise ValueError(_unsupported(location, exc)) from exc
            with self._lock:
                self._filesystems[root] = known
        fs, base = known
        return fs, base.rstrip("/") + (parts.path or "/"), False

    def exists(self, location: str) -> bool:
        fs, path, _ = self._resolve(location)
        return bool(fs.get_file_info(path).type != pafs.FileType.NotFound)

    def mkdirs(self, location: str) -> None:
        fs, path, _ = self._resolve(location)
        fs.create_dir(path, recursive=True)

    def list(self, location: str) -> builtins.list[Entry]:
        """The children of a folder ([] when it does not exist)."""
        fs, path, _ = self._resolve(location)
        try:
            infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
        except NotADirectoryError:
            return []
        base = Location(location)
        return [
            Entry(
                info.base_name,
                base / info.base_name,
                info.type == pafs.FileType.Directory,
                info.mtime_ns / 1e9 if info.mtime_ns is not None else 0.0,
            )
            for info in infos
        ]

    def read_bytes(self, location: str) -> bytes | None:
        """A file's content, None when it does not exist."""
        fs, path, _ = self._resolve(location)
        try:
            with fs.open_input_stream(path) as stream:
                return bytes(stream.read())
        except FileNotFoundError:
            return None

    def read_json(self, location: str) -> dict[str, Any] | None:
        return json_object(self.read_bytes(location))

    def write_bytes(self, location: str, data: bytes, *, overwrite: bool = False) -> None:
        fs, path, local = self._resolve(location)
        if local:
            with open(path, "wb" if overwrite else "xb") as fh:
                fh.write(data)
            return
        if not overwrite and fs.get_file_info(path).type != pafs.FileType.NotFound:
            raise FileExistsError(f"{location} exists")
        with fs.open_output_stream(path) as stream:
            stream.write(data)

    def write_atomic(self, location: str, data: bytes) -> None:
        """Write to a temporary sibling, make it 0644, rename it over `location`."""
        target = Location(location)
        tmp = target.parent / f"{TMP_PREFIX}{uuid.uuid4().hex[:12]}-{target.name}"
        self.write_bytes(tmp, data)
        fs, tmp_path, local = self._resolve(tmp)
        _, target_path, _ = self._resolve(target)
        try:
            if local:
                os.chmod(tmp_path, FILE_MODE)  # whatever the umask: other users read it
                os.replace(tmp_path, target_path)  # rename(2): atomic over an existing file
            else:
                fs.move(tmp_path, target_path)
        except BaseException:
            with contextlib.suppress(Exception):
                self.delete(tmp)
            raise

    def rename(self, src: str, dst: str) -> None:
        """Move a file or folder to a new name (which must not exist)."""
        fs, src_path, local = self._resolve(src)
        _, dst_path, _ = self._resolve(dst)
        if local:
            if os.path.lexists(dst_path):
                raise FileExistsError(f"could not rename {src} to {dst}: {dst} exists")
            os.rename(src_path, dst_path)
            return
        if fs.get_file_info(dst_path).type != pafs.FileType.NotFound:
            raise FileExistsError(f"could not rename {src} to {dst}: {dst} exists")
        if fs.get_file_info(src_path).type != pafs.FileType.Directory:
            fs.move(src_path, dst_path)
            return
        try:
            fs.move(src_path, dst_path)
        except (NotImplementedError, OSError):  # object stores: no folder rename
            for info in fs.get_file_info(pafs.FileSelector(src_path, recursive=True)):
                relative = info.path[len(src_path.rstrip("/")) :]
                if info.type == pafs.FileType.Directory:
                    fs.create_dir(dst_path.rstrip("/") + relative, recursive=True)
                else:
                    fs.copy_file(info.path, dst_path.rstrip("/") + relative)
            fs.delete_dir(src_path)

    def delete(self, location: str) -> bool:
        fs, path, _ = self._resolve(location)
        kind = fs.get_file_info(path).type
        if kind == pafs.FileType.NotFound:
            return False
        if kind == pafs.FileType.Directory:
            fs.delete_dir(path)
        else:
            fs.delete_file(path)
        return True


def _unsupported(location: str, exc: BaseException) -> str:
    return (
        f"pysetl-dagster's Arrow storage backend cannot open {location}: {exc}. pyarrow.fs "
        "supports local paths, file://, s3://, gs:// and hdfs:// (with libhdfs); for other "
        'Hadoop URIs use filesystem="hadoop" with a classic SparkSession.'
    )
