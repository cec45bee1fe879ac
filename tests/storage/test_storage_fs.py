"""Storage over both filesystem backends (Hadoop through py4j, Arrow with no JVM): crashes,
concurrent writers, URIs, permissions, partitions, and the version API the cache uses."""

import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, cast

import dagster as dg
import pytest
from dagster import AssetExecutionContext
from pysetl.workflow import Delivery, Factory, Pipeline, Stage
from pyspark.sql import DataFrame, SparkSession
from typedspark import DataSet

from pysetl_dagster import PySparkSessionResource, SparkParquetIOManager, pysetl_pipeline
from pysetl_dagster.storage.store import PySetlStorage, StorageBackend
from pysetl_dagster.storage.versions import LEASE_PREFIX, MANIFEST, RECORD, VERSION_RE, VersionStore
from tests.conftest import ROOT
from tests.fixtures.numbers_pipeline import (
    NumberRow,
    Numbers,
    StubFactory,
    build_numbers_pipeline,
    numbers_config,
)

NUMBERS = dg.AssetKey("numbers")


def _numbers_assets() -> list[Any]:
    pipeline = Pipeline().add_stage(Stage().add_factory(Numbers()))
    return list(pysetl_pipeline(pipeline, name="numbers_only").assets)


def _resources(base_path: str, fs_backend: str) -> dict[str, Any]:
    io = SparkParquetIOManager(base_path=base_path, filesystem=cast(StorageBackend, fs_backend))
    assert io.store.fs().kind == fs_backend  # the backend under test serves every call
    return {
        "pyspark": PySparkSessionResource(master="local[2]", stop_at_exit=False),
        "io_manager": io,
    }


def _store(storage: Path, fs_backend: str) -> PySetlStorage:
    store = PySetlStorage(base_path=str(storage), filesystem=cast(StorageBackend, fs_backend))
    assert store.fs().kind == fs_backend
    return store


def _versions(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.is_dir() and VERSION_RE.match(p.name)}


def _current_rows(io: SparkParquetIOManager | PySetlStorage, key: dg.AssetKey) -> list[int]:
    manifest = io.current_manifest(key)
    assert manifest is not None
    df = io.read_version(io.current_version_path(key), manifest["schema"])
    return sorted(r[0] for r in df.collect())


def test_kill_9_mid_write_leaves_the_previous_version_and_its_orphan_is_cleaned_up(
    spark: SparkSession, storage: Path, fs_backend: str
) -> None:
    resources = _resources(str(storage), fs_backend)
    io = resources["io_manager"]
    assert dg.materialize(_numbers_assets(), resources=resources, run_config=numbers_config(3))
    folder = storage / "numbers"
    (complete,) = _versions(folder)

    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.fixtures.storage_writer", str(storage), fs_backend],
        cwd=ROOT,
        env=env,
        start_new_session=True,  # its own process group: the child and its JVM die together
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    half_written = None
    try:
        deadline = time.monotonic() + 180
        while half_written is None and time.monotonic() < deadline:
            assert child.poll() is None, child.stderr.read().decode()[-3000:]  # type: ignore[union-attr]
            for name in _versions(folder) - {complete}:
                if any((folder / name).rglob("part-*")):
                    half_written = name
            time.sleep(0.2)
        assert half_written is not None, "the child never started writing"
        # a live writer in another process: its lease spares its folder from any prune
        removed = io.versions_at(folder.as_posix()).prune(keep=1)
        assert half_written in _versions(folder) and removed == []
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
    assert half_written is not None, "the child never started writing"
    assert not (folder / half_written / RECORD).exists()
    assert (folder / f"{LEASE_PREFIX}{half_written}.json").exists()

    # readers get the previous complete version; the orphan is not a version
    assert _current_rows(io, NUMBERS) == [0, 1, 2]
    assert [r["version"] for r in io.list_versions(NUMBERS)] == [complete]

    # the next write removes the orphan and its lease; it does not count among kept versions
    assert dg.materialize(_numbers_assets(), resources=resources, run_config=numbers_config(5))
    versions = _versions(folder)
    assert half_written not in versions and complete in versions and len(versions) == 2
    assert not list(folder.glob(f"{LEASE_PREFIX}*"))
    assert _current_rows(io, NUMBERS) == [0, 1, 2, 3, 4]


class Gated(Numbers):
    """Numbers whose runs wait for each other before writing: two writes at once."""

    GATE = threading.Barrier(2, timeout=120)

    def get(self) -> Any:
        Gated.GATE.wait()
        return super().get()


def test_two_runs_writing_one_asset_at_once_both_finish_with_one_complete_version(
    spark: SparkSession, storage: Path, fs_backend: str
) -> None:
    resources = _resources(str(storage), fs_backend)
    io = resources["io_manager"]
    assets = list(
        pysetl_pipeline(Pipeline().add_stage(Stage().add_factory(Gated())), name="gated").assets
    )
    results: dict[int, bool] = {}
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            config = {"ops": {"gated": {"config": {"n": n}}}}
            results[n] = dg.materialize(assets, resources=resources, run_config=config).success
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in (200, 300)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    assert results == {200: True, 300: True}

    key = dg.AssetKey("gated")
    rows = _current_rows(io, key)
    assert rows in (list(range(200)), list(range(300)))  # one output, never a mix
    manifest = io.current_manifest(key)
    assert manifest is not None and manifest["rows"] == len(rows)
    records = io.list_versions(key)
    assert {r["rows"] for r in records} == {200, 300}  # both complete, both kept
    assert manifest["version"] in {r["version"] for r in records}
    assert not list((storage / "gated").glob(f"{LEASE_PREFIX}*"))


class Count(StubFactory, Factory[int]):
    """A plain int output: stored as a pickle through the Hadoop API."""

    doubled = Delivery[DataSet[NumberRow]]()

    def get(self) -> Any:
        return 41


class PlusOne(StubFactory, Factory[int]):
    """Reads the pickled int back (through the Hadoop API) and checks it."""

    count = Delivery[int]()

    def get(self) -> Any:
        value = self.count.get()
        assert value == 41, value
        return value + 1


def test_a_file_uri_root_works_end_to_end(
    spark: SparkSession, storage: Path, fs_backend: str
) -> None:
    root = storage.as_uri()  # file:///...
    resources = _resources(root, fs_backend)
    io = resources["io_manager"]
    pipeline = build_numbers_pipeline()
    pipeline.add_stage(Stage().add_factory(Count())).add_stage(Stage().add_factory(PlusOne()))
    assets = pysetl_pipeline(pipeline, name="numbers_uri").assets
    for n in (2, 3, 4):
        result = dg.materialize(assets, resources=resources, run_config=numbers_config(n))
        assert result.success
    event = next(
        e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey("total")
    )
    assert str(event.materialization.metadata["path"].value).startswith(root + "/total/")
    assert io.current_version_path(dg.AssetKey("total")).startswith("file://")
    assert _current_rows(io, dg.AssetKey("total")) == [12]  # 2 * (0 + 1 + 2 + 3)
    raw = io.store.fs().read_bytes(
        io.current_version_path(dg.AssetKey("plus_one")) / "value.pickle"
    )
    assert raw is not None and pickle.loads(raw) == 42
    for key in ("numbers", "doubled", "total", "count"):  # pruned to keep_versions via the URI
        assert len(_versions(storage / key)) == 2
        assert len(io.list_versions(dg.AssetKey(key))) == 2


def test_manifests_and_records_are_readable_by_other_users(
    spark: SparkSession, storage: Path, fs_backend: str
) -> None:
    resources = _resources(str(storage), fs_backend)
    umask = os.umask(0o077)  # this process's files are private unless made 0644 on purpose
    try:
        assert dg.materialize(_numbers_assets(), resources=resources, run_config=numbers_config(2))
    finally:
        os.umask(umask)
    (version,) = _versions(storage / "numbers")
    for path in (storage / "numbers" / MANIFEST, storage / "numbers" / version / RECORD):
        assert path.stat().st_mode & 0o777 == 0o644, path


def test_version_api_publish_list_make_current_drop(
    spark: SparkSession, storage: Path, fs_backend: str
) -> None:
    io = _store(storage, fs_backend)
    key = dg.AssetKey(["api", "numbers"])
    location = io.asset_dir(key)
    for n, run in ((1, "r1"), (2, "r2"), (3, "r3")):
        df: DataFrame = spark.range(n).withColumnRenamed("id", "value")
        stored = io.write_version(key, location, df, run_id=run)
        published = io.publish(stored, run, extra={"cache_key": f"k{n}", "version": "ignored"})
        assert published.published
    manifest = io.current_manifest(key)
    assert manifest is not None
    record = json.loads((storage / "api" / "numbers" / manifest["version"] / RECORD).read_text())
    assert record["cache_key"] == manifest["cache_key"] == "k3"
    assert record["version"] == manifest["version"] != "ignored"
    assert {"format", "schema", "rows", "run_id", "created_at"} <= set(record)

    versions = io.list_versions(key)  # keep_versions=2: k1 pruned
    assert [(v["cache_key"], v["rows"], v["run_id"]) for v in versions] == [
        ("k3", 3, "r3"),
        ("k2", 2, "r2"),
    ]
    older = versions[1]["version"]
    made = io.make_current(key, None, older, "r9")
    assert made.published and made.version == older and made.rows == 2
    manifest = io.current_manifest(key)
    assert manifest is not None
    assert (manifest["version"], manifest["cache_key"], manifest["run_id"]) == (older, "k2", "r9")
    assert manifest["computed_by_run"] == "r2"
    assert _current_rows(io, key) == [0, 1]

    assert io.drop(key, version=older) == [
        str(location / older),
        str(location / MANIFEST),
    ]
    assert io.current_manifest(key) is None
    assert [v["cache_key"] for v in io.list_versions(key)] == ["k3"]
    assert io.drop(key) == [str(location)]
    assert not (storage / "api" / "numbers").exists()
    assert io.list_versions(key) == [] and io.partitions(key) == []


def test_a_live_writer_is_spared_and_dead_ones_are_cleaned(
    spark: SparkSession, storage: Path, fs_backend: str
) -> None:
    io = _store(storage, fs_backend)
    key = dg.AssetKey("leased")
    location = io.asset_dir(key)
    store = io.versions_at(location)
    live = store.begin("another-run")  # held by this process, as by a concurrent writer
    (storage / "leased" / live).mkdir(parents=True)
    (storage / "leased" / live / "part-00000.parquet").write_bytes(b"half")

    exited = subprocess.Popen(["true"])
    exited.wait()

    def fake_writer(host: str, heartbeat_age: float) -> str:
        version = store.begin("elsewhere")
        store.release(version)
        (storage / "leased" / version).mkdir()
        now = time.time()
        lease = {
            "host": host,
            "pid": exited.pid,
            "pid_start": "1",
            "heartbeat_at": now - heartbeat_age,
            "version": version,
        }
        (storage / "leased" / f"{LEASE_PREFIX}{version}.json").write_text(json.dumps(lease))
        return version

    remote_live = fake_writer("some-other-host", 5)
    remote_dead = fake_writer("some-other-host", 3600)
    local_dead = fake_writer(socket.gethostname(), 0)  # a writer process that is gone
    no_lease = store.begin("crashed")
    store.release(no_lease)
    (storage / "leased" / no_lease).mkdir()
    legacy = "20200101T000000-abcdef12"  # written before records existed, not current
    (storage / "leased" / legacy).mkdir()
    (storage / "leased" / legacy / "part-00000.parquet").write_bytes(b"old")

    for n in (1, 2, 3):
        df = spark.range(n).withColumnRenamed("id", "value")
        io.publish(io.write_version(key, location, df, run_id=f"r{n}"), f"r{n}")
    left = _versions(storage / "leased")
    assert live in left and remote_live in left
    assert not left & {remote_dead, local_dead, no_lease, legacy}
    assert len(left) == 4  # the two leased folders and the 2 kept complete versions
    store.abandon(live)
    assert live not in _versions(storage / "leased")
    assert isinstance(store, VersionStore) and store.fs.kind == fs_backend


def test_one_partition_materialized_writes_only_that_partition(
    spark: SparkSession, storage: Path, fs_backend: str
) -> None:
    keys = ["a", "2024-01-01-00:00"]
    partitions = dg.StaticPartitionsDefinition(keys)

    @dg.asset(partitions_def=partitions, required_resource_keys={"pyspark"})
    def parted(context: AssetExecutionContext) -> DataFrame:
        session = context.resources.pyspark.spark_session
        return session.createDataFrame([(context.partition_key,)], "key string")

    @dg.asset(partitions_def=partitions)
    def echoed(parted: DataFrame) -> DataFrame:
        return parted

    resources = _resources(str(storage), fs_backend)
    io = resources["io_manager"]
    folder = storage / "parted"
    assert dg.materialize([parted, echoed], resources=resources, partition_key="a").success
    assert sorted(p.name for p in folder.iterdir()) == ["a"]
    assert io.partitions(dg.AssetKey("parted")) == ["a"]

    assert dg.materialize([parted, echoed], resources=resources, partition_key=keys[1]).success
    other = next(p for p in folder.iterdir() if p.name != "a")
    assert other.name == "2024-01-01-00%3A00"  # escaped the same way by both backends
    before = {p: p.stat().st_mtime_ns for p in other.rglob("*")}
    assert io.partitions(dg.AssetKey("parted")) == sorted(keys)

    assert dg.materialize([parted, echoed], resources=resources, partition_key="a").success
    assert {p: p.stat().st_mtime_ns for p in other.rglob("*")} == before  # untouched
    assert len(io.list_versions(dg.AssetKey("parted"), "a")) == 2
    assert len(io.list_versions(dg.AssetKey("parted"), keys[1])) == 1
    for key in keys:  # each partition is read back on its own
        path = io.current_version_path(dg.AssetKey("echoed"), key)
        assert [r[0] for r in spark.read.parquet(str(path)).collect()] == [key]
    assert io.drop(dg.AssetKey("parted"), "a") == [str(io.asset_dir(dg.AssetKey("parted"), "a"))]
    assert io.partitions(dg.AssetKey("parted")) == [keys[1]]


def _layout(root: Path) -> list[tuple[str, int | None]]:
    """Every file and folder under a storage root (version names replaced by their rank in
    each folder), with the permission bits of manifests and records."""
    names: dict[str, str] = {}
    for folder in sorted({p.parent for p in root.rglob("*") if VERSION_RE.match(p.name)}):
        for rank, version in enumerate(sorted(_versions(folder))):
            names[version] = f"<v{rank}>"
    layout = []
    for path in root.rglob("*"):
        relative = "/".join(names.get(part, part) for part in path.relative_to(root).parts)
        if path.name.startswith("part-") or path.name.startswith(".part-"):
            relative = relative.rsplit("/", 1)[0] + "/<parquet part>"
        mode = path.stat().st_mode & 0o777 if path.name in (MANIFEST, RECORD) else None
        layout.append((relative, mode))
    return sorted(set(layout))


def test_materializing_through_arrow_gives_the_same_layout_as_hadoop(
    spark: SparkSession, tmp_path: Path
) -> None:
    layouts, manifests = {}, {}
    for backend in ("hadoop", "arrow"):
        root = tmp_path / backend
        resources = _resources(str(root), backend)
        pipeline = build_numbers_pipeline()
        pipeline.add_stage(Stage().add_factory(Count())).add_stage(Stage().add_factory(PlusOne()))
        assets = pysetl_pipeline(pipeline, name=f"numbers_{backend}").assets
        for n in (2, 3, 4):
            assert dg.materialize(assets, resources=resources, run_config=numbers_config(n))
        layouts[backend] = _layout(root)
        manifests[backend] = {
            key: sorted(json.loads((root / key / MANIFEST).read_text()))
            for key in ("numbers", "doubled", "total", "count", "plus_one")
        }
    assert layouts["arrow"] == layouts["hadoop"]
    assert ("numbers/_current.json", 0o644) in layouts["arrow"]
    assert ("plus_one/<v1>/value.pickle", None) in layouts["arrow"]
    assert manifests["arrow"] == manifests["hadoop"]


NO_JVM_SCRIPT = """
import json, sys
import dagster as dg
from pyspark import SparkContext
from pyspark.sql import SparkSession
from pysetl_dagster.storage.store import PySetlStorage, backend_for

root = sys.argv[1]
store = PySetlStorage(base_path=root)  # filesystem="auto": no session, a local path
key = dg.AssetKey("numbers")
out = {
    "backend": store.backend(),
    "kind": store.fs().kind,
    "rules": [backend_for(u) for u in ("hdfs://nn/x", "s3a://b/x", "s3://b/x", "file:///x")],
    "versions": [r["version"] for r in store.list_versions(key)],
    "current": store.current_manifest(key)["version"],
}
older = out["versions"][-1]
store.make_current(key, None, older, "cli-run")
out["made_current"] = store.current_manifest(key)["version"]
out["partitions"] = store.partitions(dg.AssetKey("parted"))
out["parted_versions"] = [
    len(store.list_versions(dg.AssetKey("parted"), p)) for p in out["partitions"]
]
value = store.write_version(dg.AssetKey("plain"), store.asset_dir(dg.AssetKey("plain")), 41)
store.publish(value, "cli-run")
out["plain"] = store.read_pickle(store.current_version_path(dg.AssetKey("plain")), "plain")
out["invalidated"] = store.invalidate(key)
out["dropped"] = store.drop(dg.AssetKey("plain"))
out["no_jvm"] = (
    SparkSession.getActiveSession() is None
    and SparkSession._instantiatedSession is None
    and SparkContext._gateway is None
    and SparkContext._jvm is None
)
print(json.dumps(out))
"""


def test_the_arrow_backend_serves_the_version_api_with_no_spark_and_no_jvm(
    spark: SparkSession, storage: Path
) -> None:
    resources = _resources(str(storage), "hadoop")
    for n in (2, 3):
        assert dg.materialize(_numbers_assets(), resources=resources, run_config=numbers_config(n))
    store = _store(storage, "hadoop")
    parted = dg.AssetKey("parted")
    for partition in ("a", "2024-01-01-00:00"):
        df = spark.range(1).withColumnRenamed("id", "value")
        location = store.asset_dir(parted, partition)
        store.publish(store.write_version(parted, location, df, run_id="r"), "r")
    versions = [r["version"] for r in store.list_versions(NUMBERS)]

    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(
        [sys.executable, "-c", NO_JVM_SCRIPT, str(storage)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["no_jvm"] is True
    assert (out["backend"], out["kind"]) == ("arrow", "arrow")
    assert out["rules"] == ["hadoop", "hadoop", "arrow", "arrow"]
    assert out["versions"] == versions and out["current"] == versions[0]
    assert out["made_current"] == versions[1]
    assert out["partitions"] == ["2024-01-01-00:00", "a"] and out["parted_versions"] == [1, 1]
    assert out["plain"] == 41 and out["invalidated"] is True
    assert out["dropped"] == [str(storage / "plain")]

    # what the JVM-free process did is what the Hadoop backend reads
    manifest = store.current_manifest(NUMBERS)
    assert manifest is not None and manifest["version"] == versions[1]
    assert manifest["run_id"] == "cli-run" and manifest["cache_invalidated_at"]
    assert _current_rows(store, NUMBERS) == [0, 1]
    assert not (storage / "plain").exists()


def _old(fields: dict[str, Any]) -> Any:
    """Fields by names the signature no longer has (typed loosely on purpose)."""
    return fields


def test_the_io_manager_delegates_to_its_store_and_accepts_the_old_field_names(
    storage: Path,
) -> None:
    io = SparkParquetIOManager(base_path=str(storage), filesystem="arrow", keep_versions=3)
    assert (io.store.base_path, io.store.keep_versions, io.store.filesystem) == (
        str(storage),
        3,
        "arrow",
    )
    stored = io.store.write_version(NUMBERS, io.asset_dir(NUMBERS), {"n": 1}, run_id="r1")
    io.store.publish(stored, "r1")
    assert io.current_manifest(NUMBERS) == io.store.current_manifest(NUMBERS) is not None
    assert io.list_versions(NUMBERS) == io.store.list_versions(NUMBERS)
    assert io.current_version_path(NUMBERS) == io.store.current_version_path(NUMBERS)

    # the names before `*_seconds` (not in the signature any more: passed as a mapping)
    with pytest.warns(DeprecationWarning, match="lease_timeout_s=.*lease_timeout_seconds"):
        old = SparkParquetIOManager(base_path=str(storage), **_old({"lease_timeout_s": 120}))
    assert old.lease_timeout_seconds == old.store.lease_timeout_seconds == 120
    with pytest.warns(DeprecationWarning, match="cache_ttl_s=.*cache_ttl_seconds"):
        old = SparkParquetIOManager(base_path=str(storage), **_old({"cache_ttl_s": 60}))
    assert old.cache_ttl_seconds == old.cache_ttl_s == 60
