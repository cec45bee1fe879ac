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

import os
import re
from dataclasses import dataclass

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


def qualified(location: str) -> str:
    """A URI Hadoop and Spark resolve the same way: a path without a scheme is local (never
    the cluster's default filesystem), made absolute."""
    if _SCHEME_RE.match(location) and not re.match(r"^[A-Za-z]:[\\/]", location):
        return location
    return "file://" + os.path.abspath(location)


@dataclass(frozen=True)
class Entry:
    """One child of a listed folder."""

    name: str
    location: Location
    is_dir: bool
    modified: float
