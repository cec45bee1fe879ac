"""The filesystem interface of versioned storage: the few calls the version store makes.

`VersionStore` (manifests, records, leases, retention) never talks to a filesystem client
itself: it goes through a `FileSystem`, so the same code (and the same tests) run over two
backends:

- `HadoopFS` (`storage/hadoop.py`): the Hadoop `FileSystem` of a classic SparkSession's JVM,
  through py4j. Any URI Spark itself writes: local paths, `file://`, `hdfs://`, `s3a://`,
  `abfs://`, ... with the connectors and credentials of the session's Hadoop configuration.
- `ArrowFS` (`storage/arrow.py`): `pyarrow.fs`, no JVM: local paths and `file://`, and object
  stores pyarrow knows (`s3://`, `gs://`, `hdfs://` when libhdfs is installed). What a Spark
  Connect client (which has no JVM) and the CLI use.

`pysetl_dagster.storage.store.filesystem_for` chooses one from the storage URI and the
session kind (the rule is in that module's docstring).

Every backend keeps the same guarantees (the version store relies on them):

- `write_atomic` writes a temporary sibling (`_tmp-...`), makes it 0644 where the filesystem
  has permissions, and renames it over the target: `rename(2)` on a local disk, a rename with
  overwrite on HDFS, a whole-object replace on object stores. A reader sees the old content or
  the new one, never a partial file.
- `list` of a missing folder is `[]`; `read_bytes` / `read_json` of a missing file is None.
- `Entry.modified` is in seconds since the epoch (what lease and temporary-file ages compare).
- `rename` moves a file or folder to a name that must not exist yet; `delete` is recursive and
  says whether anything was there.
"""

from __future__ import annotations

import builtins
import json
import os
import re
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

TMP_PREFIX = "_tmp-"
FILE_MODE = 0o644
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


class Location(str):
    """A storage location: a local path or a Hadoop URI, joined with `/` like a `Path`.

    A plain `str` (so metadata, logs and `spark.read.parquet(str(...))` take it as is), with
    `location / "name"`, `.name` and `.parent` for the code that used `pathlib.Path`.
    """

    def __truediv__(self, name: str) -> Location:
        return Location(self.rstrip("/") + "/" + str(name).strip("/"))

    @property
    def name(self) -> str:
        return self.rstrip("/").rsplit("/", 1)[-1]

    @property
    def parent(self) -> Location:
        return Location(self.rstrip("/").rsplit("/", 1)[0])


def has_scheme(location: str) -> bool:
    """Whether a location is a URI (`scheme:...`) rather than a local path (`C:\\` is a path)."""
    return bool(_SCHEME_RE.match(location)) and not re.match(r"^[A-Za-z]:[\\/]", location)


def qualified(location: str) -> str:
    """A URI Hadoop and Spark resolve the same way: a path without a scheme is local (never
    the cluster's default filesystem), made absolute."""
    if has_scheme(location):
        return location
    return "file://" + os.path.abspath(location)


def json_object(raw: bytes | None) -> dict[str, Any] | None:
    """A JSON object from a file's bytes; None for a missing, torn or non-object file (a
    manifest or lease being replaced reads as absent, never as an error)."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


@dataclass(frozen=True)
class Entry:
    """One child of a listed folder."""

    name: str
    location: Location
    is_dir: bool
    modified: float
    """Modification time, seconds since the epoch."""


@runtime_checkable
class FileSystem(Protocol):
    """What the version store needs from a filesystem (see the module docstring for the
    guarantees each backend keeps). Locations are local paths or URIs, as given."""

    kind: str
    """The backend's name in `StorageBackend` terms: "hadoop" or "arrow"."""

    def exists(self, location: str) -> bool:
        """Whether a file or folder exists."""
        ...

    def mkdirs(self, location: str) -> None:
        """Create a folder and its parents (nothing if it exists)."""
        ...

    def list(self, location: str) -> builtins.list[Entry]:
        """The children of a folder ([] when it does not exist)."""
        ...

    def read_bytes(self, location: str) -> bytes | None:
        """A file's content, None when it does not exist."""
        ...

    def read_json(self, location: str) -> dict[str, Any] | None:
        """A JSON object file, None when it is missing or not (yet) a whole JSON object."""
        ...

    def write_bytes(self, location: str, data: bytes, *, overwrite: bool = False) -> None:
        """Write a file (not atomically: for version data); fails if it exists unless
        `overwrite`."""
        ...

    def write_atomic(self, location: str, data: bytes) -> None:
        """Write a temporary sibling, make it 0644, rename it over `location`."""
        ...

    def rename(self, src: str, dst: str) -> None:
        """Move a file or folder to a new name (which must not exist)."""
        ...

    def delete(self, location: str) -> bool:
        """Delete a file or a folder recursively; False when nothing was there."""
        ...
