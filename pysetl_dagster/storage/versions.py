"""Versions, manifests, leases and retention of one asset folder, over a `FileSystem`.

The version store speaks only the small `FileSystem` interface (`storage/filesystem.py`), so
it runs the same over the Hadoop backend (classic SparkSession, py4j) and the Arrow backend
(`pyarrow.fs`, no JVM); the storage tests run against both.

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
- Records, manifests and leases are written with `FileSystem.write_atomic`: a temporary file,
  made 0644, renamed over the target (atomic locally and on HDFS; on object stores a single
  small object is replaced as a whole). A reader sees the old manifest or the new one, never a
  partial one.
- A writer holds a lease (host, pid, process start time, heartbeat) on its version until the
  version is published or rejected; the lease keeps the filesystem it was taken on, so its
  heartbeat goes through the same backend. A version folder with no record is an orphan,
  removed by the next write of that asset (or partition), when its lease is missing or dead:
  on the same host, the writer process is gone (checked by pid and start time, at once); on
  another host, the heartbeat (every `heartbeat_seconds`) is older than
  `lease_timeout_seconds`. Writers using different backends on one folder see each other's
  leases: the lease is a file, whichever client wrote it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from pysetl_dagster.storage.filesystem import TMP_PREFIX, Entry, FileSystem, Location

MANIFEST = "_current.json"
RECORD = "_pysetl_version.json"
REJECTED = "_rejected"
LEASE_PREFIX = "_writing-"
VERSION_RE = re.compile(r"^\d{8}T\d{6}(\d{6})?-[0-9a-f]{8}$")
"""`YYYYmmddTHHMMSSffffff-<8 hex>` (UTC): names sort by start time, microseconds included.
Folders of the earlier layout (`YYYYmmddTHHMMSS-<8 hex>`, no record) are versions too: kept
while current, else removed as orphans."""


def partition_folder(partition_key: str) -> str:
    """A partition key as one folder name Hadoop accepts (no `:`/`/`, not hidden)."""
    name = quote(partition_key, safe="-=+,@~")
    if name.startswith(("_", ".")):
        name = "%" + f"{ord(name[0]):02X}" + name[1:]
    return name


def partition_key_of(folder: str) -> str:
    return unquote(folder)


def new_version_name() -> str:
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"{int(now % 1 * 1e6):06d}"
    return f"{stamp}-{uuid.uuid4().hex[:8]}"


# -- leases ------------------------------------------------------------------------------


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


_HOST = socket.gethostname()


class Leases:
    """The leases this process holds, refreshed by one daemon thread (a heartbeat)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, tuple[FileSystem, dict[str, Any]]] = {}
        self._thread: threading.Thread | None = None
        self.heartbeat_seconds = 30.0

    def take(self, fs: FileSystem, lease: Location, run_id: str | None, version: str) -> None:
        body = {
            "host": _HOST,
            "pid": os.getpid(),
            "pid_start": _process_start(os.getpid()),
            "run_id": run_id,
            "version": version,
            "started_at": time.time(),
            "heartbeat_at": time.time(),
        }
        fs.write_atomic(lease, json.dumps(body).encode())
        with self._lock:
            self._held[str(lease)] = (fs, body)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._beat, name="pysetl-storage-leases", daemon=True
                )
                self._thread.start()

    def release(self, lease: str) -> None:
        with self._lock:
            held = self._held.pop(str(lease), None)
        if held is not None:
            with contextlib.suppress(Exception):  # dead anyway once this process forgets it
                held[0].delete(lease)

    def holds(self, lease: str) -> bool:
        with self._lock:
            return str(lease) in self._held

    def _beat(self) -> None:
        while True:
            time.sleep(self.heartbeat_seconds)
            with self._lock:
                held = list(self._held.items())
            for lease, (fs, body) in held:
                body["heartbeat_at"] = time.time()
                try:
                    if self.holds(lease):
                        fs.write_atomic(lease, json.dumps(body).encode())
                except Exception:
                    pass


LEASES = Leases()


def lease_alive(
    lease: Mapping[str, Any] | None, lease_file: Entry | None, timeout_seconds: float
) -> bool:
    """Whether the writer that holds a lease may still be writing."""
    if lease_file is None:
        return False
    if lease is None:  # being rewritten, or torn: trust it while it is fresh
        return time.time() - lease_file.modified < timeout_seconds
    if lease.get("host") == _HOST:
        pid = int(lease.get("pid", -1))
        if pid == os.getpid() and lease.get("pid_start") == _process_start(pid):
            return LEASES.holds(lease_file.location)
        start = _process_start(pid)
        if start is not None:
            return lease.get("pid_start") in (None, start)
        if os.path.isdir("/proc"):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return time.time() - float(lease.get("heartbeat_at", 0)) < timeout_seconds


# -- one asset's (or partition's) versions -----------------------------------------------


@dataclass
class Scan:
    leases: dict[str, Entry]
    complete: list[dict[str, Any]] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    dead_leases: list[str] = field(default_factory=list)


class VersionStore:
    """The versions, manifest, leases and retention of one asset folder."""

    def __init__(self, fs: FileSystem, location: str, lease_timeout_seconds: float = 300.0) -> None:
        self.fs = fs
        self.location = Location(location)
        self.lease_timeout_seconds = lease_timeout_seconds

    def lease_of(self, version: str) -> Location:
        return self.location / f"{LEASE_PREFIX}{version}.json"

    # -- writing ---------------------------------------------------------------------------

    def begin(self, run_id: str | None) -> str:
        """A new version name, leased to this process until it is committed or abandoned."""
        version = new_version_name()
        self.fs.mkdirs(self.location)
        LEASES.take(self.fs, self.lease_of(version), run_id, version)
        return version

    def abandon(self, version: str) -> None:
        """Remove a version that will never be published (its write or audit failed)."""
        try:
            self.fs.delete(self.location / version)
        finally:
            LEASES.release(self.lease_of(version))

    def commit(self, version: str, record: Mapping[str, Any]) -> None:
        """Write the version's record: from now on the version is complete."""
        self.fs.write_atomic(self.location / version / RECORD, json.dumps(record).encode())

    def release(self, version: str) -> None:
        LEASES.release(self.lease_of(version))

    def reject(self, version: str, keep: int) -> Location:
        """Move a version aside (never current), keeping the last `keep` rejected ones."""
        rejected = self.location / REJECTED
        self.fs.mkdirs(rejected)
        target = rejected / version
        try:
            self.fs.rename(self.location / version, target)
        finally:
            self.release(version)
        names = sorted(e.name for e in self.fs.list(rejected) if e.is_dir)
        for name in names[:-keep]:
            self.fs.delete(rejected / name)
        return target

    # -- manifest --------------------------------------------------------------------------

    def manifest(self) -> dict[str, Any] | None:
        """The current manifest, None when there is none or its version is gone."""
        manifest = self.fs.read_json(self.location / MANIFEST)
        if manifest is None or not self.fs.exists(self.location / str(manifest["version"])):
            return None
        return manifest

    def switch(self, manifest: Mapping[str, Any]) -> None:
        self.fs.write_atomic(self.location / MANIFEST, json.dumps(manifest).encode())

    def record(self, version: str) -> dict[str, Any] | None:
        return self.fs.read_json(self.location / version / RECORD)

    def make_current(self, version: str, run_id: str) -> dict[str, Any]:
        """Switch the manifest to an existing complete version (leased meanwhile so that a
        concurrent prune leaves it alone)."""
        record = self.record(version)
        if record is None:
            raise FileNotFoundError(
                f"Version {version} under {self.location} is not a complete stored version "
                "(no record): see list_versions() for the versions that can be made current."
            )
        previous = self.fs.read_json(self.location / MANIFEST)
        LEASES.take(self.fs, self.lease_of(version), run_id, version)
        try:
            manifest = {**record, "run_id": run_id, "published_at": time.time()}
            manifest.setdefault("computed_by_run", record.get("run_id"))
            self.switch(manifest)
            if self.record(version) is None:  # pruned by another writer meanwhile
                if previous is not None:
                    self.switch(previous)
                raise FileNotFoundError(f"Version {version} under {self.location} was removed")
        finally:
            self.release(version)
        return manifest

    # -- listing and retention -------------------------------------------------------------

    def scan(self) -> Scan:
        """The complete versions (newest first), orphans and leases of this folder."""
        entries = self.fs.list(self.location)
        leases = {
            e.name[len(LEASE_PREFIX) : -len(".json")]: e
            for e in entries
            if e.name.startswith(LEASE_PREFIX) and e.name.endswith(".json")
        }
        scan = Scan(leases=leases)
        versions = {e.name for e in entries if e.is_dir and VERSION_RE.match(e.name)}
        for name in sorted(versions):
            record = self.record(name)
            if record is not None:
                scan.complete.append({**record, "version": name, "path": str(self.location / name)})
            elif not self.leased(name, leases):
                scan.orphans.append(name)
        scan.dead_leases = [n for n in leases if n not in versions and not self.leased(n, leases)]
        scan.complete.sort(
            key=lambda r: (float(r.get("created_at") or 0), r["version"]), reverse=True
        )
        return scan

    def leased(self, version: str, leases: Mapping[str, Entry]) -> bool:
        """Whether a live writer holds a lease on the version."""
        lease_file = leases.get(version)
        lease = self.fs.read_json(lease_file.location) if lease_file else None
        return lease_alive(lease, lease_file, self.lease_timeout_seconds)

    def versions(self) -> list[dict[str, Any]]:
        return self.scan().complete

    def prune(self, keep: int, protect: set[str] | None = None) -> list[str]:
        """Remove orphans (dead writers' folders), dead leases, stale temporary files and the
        complete versions beyond the newest `keep` (never the current one, a leased one or
        `protect`). Returns the removed versions' locations."""
        scan = self.scan()
        current = self.fs.read_json(self.location / MANIFEST)
        spared = set(protect or ()) | {str((current or {}).get("version"))}
        spared |= {r["version"] for r in scan.complete[:keep]}
        removed: list[str] = []
        stale = [r["version"] for r in scan.complete[keep:]] + scan.orphans
        for name in stale:
            if name in spared or (name in scan.leases and self.leased(name, scan.leases)):
                continue  # current, just published, or being made current right now
            self.fs.delete(self.location / name)
            removed.append(str(self.location / name))
            if name in scan.leases:
                self.fs.delete(scan.leases[name].location)
        for name in scan.dead_leases:
            self.fs.delete(scan.leases[name].location)
        now = time.time()
        for entry in self.fs.list(self.location):
            if (
                entry.name.startswith(TMP_PREFIX)
                and now - entry.modified > self.lease_timeout_seconds
            ):
                self.fs.delete(entry.location)
        return removed

    def drop(self, version: str | None) -> list[str]:
        """Delete one version (and the manifest if it named it), or the whole folder."""
        if version is None:
            return [str(self.location)] if self.fs.delete(self.location) else []
        dropped = []
        if self.fs.delete(self.location / version):
            dropped.append(str(self.location / version))
        current = self.fs.read_json(self.location / MANIFEST)
        if current is not None and current.get("version") == version:
            self.fs.delete(self.location / MANIFEST)
            dropped.append(str(self.location / MANIFEST))
        return dropped


def partition_folders(fs: FileSystem, location: str) -> Iterator[Entry]:
    """The partition folders of an asset folder (those that hold a manifest)."""
    for entry in fs.list(location):
        if (
            entry.is_dir
            and not entry.name.startswith(("_", "."))
            and not VERSION_RE.match(entry.name)
            and fs.exists(entry.location / MANIFEST)
        ):
            yield entry
