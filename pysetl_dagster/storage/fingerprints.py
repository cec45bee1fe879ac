"""Stable fingerprints of what determines a Factory's output: its code and its inputs.

Code: the Factory's own methods and, transitively, the functions, classes and constants of the
user's own modules they refer to (a helper edited in another module changes the fingerprint).
Third-party libraries (pyspark, pysetl, dagster, anything installed in site-packages or the
standard library) count by name only: upgrading them is not tracked.

Values (external inputs, instance state): a hash of their content, where files and folders
count by what their filesystem can tell cheaply and no copy tool can forge (see
`file_fingerprint`): local files by size, mtime, ctime, inode and device, as git's index does
(`cp -p`, `tar -x`, `rsync -a` set size and mtime, never ctime or the inode); remote files by
the filesystem's own content checksum where it keeps one (HDFS `getFileChecksum`, an S3 ETag, a
GCS MD5), else by size and mtime. When asked (per input: `pysetl_content_hash = True` on the
input's class; for every input: `SparkParquetIOManager(input_fingerprint="content")`), local
files are hashed by content instead: the same bytes are the same input, whatever their times.
Each fingerprint notes which *kind* decided (`FingerprintKind`), recorded in the
materialization as `pysetl/cache_fingerprint`. A value whose content cannot be seen (a Spark
DataFrame, an object whose repr is a memory address) has *no* fingerprint: callers must then
recompute rather than guess, and say why.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import os
import site
import sys
import sysconfig
import types
from collections.abc import Iterable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

from dagster_shared.check.record import is_record

from pysetl_dagster.errors import PySetlError

#: Top-level packages whose code is never hashed (they are libraries, not the user's project).
LIBRARY_PACKAGES = frozenset(
    {
        "pysetl",
        "pysetl_dagster",
        "dagster",
        "pyspark",
        "typedspark",
        "pandera",
        "pandas",
        "polars",
        "numpy",
        "pyarrow",
        "py4j",
        "pydantic",
        "typing_extensions",
    }
)

_FINGERPRINT_HOOK = "pysetl_fingerprint"
_CONTENT_HASH_ATTR = "pysetl_content_hash"
"""An external input object (or its class) setting `pysetl_content_hash = True` has the files it
names hashed by content (per input), whatever the storage's `input_fingerprint` setting."""
_CHUNK = 4 << 20
"""An external input object may define `pysetl_fingerprint() -> str | None` to say itself what
identifies its content (None: it cannot be fingerprinted)."""


class Unfingerprintable(PySetlError):
    """A value (or a part of the code) has no stable fingerprint; the message says which."""


# -- which modules are the user's ------------------------------------------------------------


@functools.cache
def _library_dirs() -> tuple[str, ...]:
    paths = set()
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(name)
        if path:
            paths.add(os.path.realpath(path))
    for path in [*site.getsitepackages(), site.getusersitepackages()]:
        paths.add(os.path.realpath(path))
    return tuple(sorted(paths))


@functools.cache
def _module_is_users(module_name: str, module_file: str | None) -> bool:
    if module_name.split(".")[0] in LIBRARY_PACKAGES or module_name in sys.builtin_module_names:
        return False
    if not module_file:
        return module_name == "__main__"  # a notebook or an interactive session
    path = os.path.realpath(module_file)
    return not any(path.startswith(d + os.sep) for d in _library_dirs())


def is_user_module(module_name: str | None) -> bool:
    """True for modules of the user's project (not the standard library, not installed
    packages, not the libraries this project wraps)."""
    if not module_name:
        return False
    module = sys.modules.get(module_name)
    return _module_is_users(module_name, getattr(module, "__file__", None))


# -- code ------------------------------------------------------------------------------------


class _CodeHasher:
    """Hashes a class or function and, transitively, the user code it refers to."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.seen: set[int] = set()
        self.unstable: list[str] = []

    def update(self, text: str) -> None:
        self.digest.update(text.encode())
        self.digest.update(b"\x00")

    # a class: its own members (and its user-defined bases), as `factory_code_version` did
    def hash_class(self, klass: type, root: bool = False) -> None:
        """A class's members; `root` (the Factory itself) is hashed wherever it was defined
        (a class built by `exec` or in a notebook has no user module)."""
        if id(klass) in self.seen:
            self.update(f"class-ref {klass.__module__}.{klass.__qualname__}")
            return
        self.seen.add(id(klass))
        for base in type.mro(klass):
            if base is object or not ((root and base is klass) or is_user_module(base.__module__)):
                if base is not object:
                    self.update(f"base {base.__module__}.{base.__qualname__}")
                continue
            self.update(f"class {base.__qualname__}")
            annotations = inspect.get_annotations(base)
            if annotations:
                self.update("annotations " + stable_repr(annotations))
            for attr, value in sorted(vars(base).items()):
                self.hash_member(attr, value, base.__module__)

    def hash_member(self, attr: str, value: Any, module: str) -> None:
        func = value.__func__ if isinstance(value, classmethod | staticmethod) else value
        if isinstance(func, property):
            for accessor in (func.fget, func.fset):
                if accessor is not None:
                    self.update(f"property {attr}")
                    self.hash_function(accessor)
            return
        if isinstance(func, types.FunctionType):
            self.update(f"def {attr}")
            self.hash_function(func)
        elif attr.startswith("__"):
            return
        elif isinstance(value, type):
            self.update(f"{attr}=class {value.__qualname__}")
            if is_user_module(value.__module__):
                self.hash_class(value)
        else:
            self.hash_value_ref(f"{module}.{attr}", value)

    def hash_function(self, func: Any) -> None:
        func = getattr(func, "__wrapped__", func)  # decorated with functools.wraps
        if not isinstance(func, types.FunctionType):
            return
        if id(func) in self.seen:
            self.update(f"func-ref {func.__module__}.{func.__qualname__}")
            return
        self.seen.add(id(func))
        code = func.__code__
        self._hash_code(code)
        if func.__defaults__:
            self.update("defaults " + stable_repr(func.__defaults__))
        if func.__kwdefaults__:
            self.update("kwdefaults " + stable_repr(func.__kwdefaults__))
        names = _names_of(code)
        namespace = func.__globals__
        for name in names:
            if name not in namespace:
                continue  # a builtin, an attribute name or a local
            self.hash_reference(name, namespace[name], names, func.__module__)
        for name, cell in zip(code.co_freevars, func.__closure__ or (), strict=False):
            try:
                contents = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            self.hash_reference(name, contents, names, func.__module__)

    def _hash_code(self, code: types.CodeType) -> None:
        self.digest.update(code.co_code)
        self.update(repr(code.co_names))
        self.update(repr(code.co_varnames))
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                self._hash_code(const)
            else:
                self.update(repr(const))

    def hash_reference(self, name: str, value: Any, names: Iterable[str], module: str) -> None:
        """A global (or closure variable) a function uses."""
        if isinstance(value, types.ModuleType):
            self.update(f"module {name}={value.__name__}")
            if is_user_module(value.__name__):
                # `helpers.clean(...)`: the attributes of a user module the code names
                for attr in sorted(set(names)):
                    if attr in vars(value):
                        self.hash_reference(f"{name}.{attr}", vars(value)[attr], (), value.__name__)
            return
        if isinstance(value, types.FunctionType):
            if _is_user_function(value):
                self.update(f"uses {name}")
                self.hash_function(value)
            else:
                self.update(f"uses {name}={value.__module__}.{value.__qualname__}")
            return
        if isinstance(value, type):
            if is_user_module(value.__module__):
                self.update(f"uses class {name}")
                self.hash_class(value)
            else:
                self.update(f"uses class {name}={value.__module__}.{value.__qualname__}")
            return
        if callable(value) and not is_user_module(getattr(value, "__module__", None)):
            self.update(f"uses {name}={type(value).__module__}.{type(value).__qualname__}")
            return
        self.hash_value_ref(f"{module}.{name}", value)

    def hash_value_ref(self, where: str, value: Any) -> None:
        """A module constant or class attribute: its content, when it has a stable one."""
        if not is_user_module(type(value).__module__) and not _is_plain(value):
            # an instance of a library class (a logger, a session, a connector): its type
            # only, unless its repr is stable and says what it is
            text = stable_repr(value)
            self.update(f"{where}={type(value).__qualname__}:{text if _stable(text) else '?'}")
            return
        try:
            self.update(f"{where}={value_fingerprint(value)}")
        except Unfingerprintable as exc:
            self.unstable.append(f"{where} ({exc})")


def _is_user_function(func: types.FunctionType) -> bool:
    # a function made by `exec` without a module name is the user's too
    return func.__module__ in {None, "builtins"} or is_user_module(func.__module__)


def _names_of(code: types.CodeType) -> list[str]:
    names = list(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names.extend(_names_of(const))
    return names


def code_fingerprint(obj: type | types.FunctionType) -> tuple[str, list[str]]:
    """The hash of a class (or function) and the user code it uses, and the references whose
    values could not be hashed (empty when the fingerprint is complete)."""
    hasher = _CodeHasher()
    if isinstance(obj, type):
        hasher.hash_class(obj, root=True)
    else:
        hasher.hash_function(obj)
    return hasher.digest.hexdigest()[:16], hasher.unstable


# -- values ----------------------------------------------------------------------------------


def _is_plain(value: Any) -> bool:
    plain = (str, bytes, int, float, bool, complex, Path, tuple, list, dict, set, frozenset)
    return value is None or isinstance(value, plain)


def _stable(text: str) -> bool:
    return " at 0x" not in text and " object at " not in text


def stable_repr(value: Any) -> str:
    """A repr that is the same in every process: set members in order, no memory addresses."""
    if isinstance(value, set | frozenset):
        return "{" + ", ".join(sorted(stable_repr(v) for v in value)) + "}"
    text = repr(value)
    return text.split(" at 0x")[0] if " at 0x" in text else text


class FingerprintKind(StrEnum):
    """What decided a file's fingerprint (recorded as `pysetl/cache_fingerprint`)."""

    STAT = "stat"
    """Local file: size, mtime, ctime, inode and device (git's index; no copy tool sets ctime)."""
    CONTENT = "content"
    """The bytes, hashed (sha256): asked for per input or for every input."""
    CHECKSUM = "checksum"
    """The filesystem's own content checksum: HDFS getFileChecksum, S3 ETag, GCS MD5."""
    LISTING = "listing"
    """A remote file with no checksum available: size and modification time only."""
    VALUE = "value"
    """No file: the value's own content."""


@dataclasses.dataclass
class FingerprintOptions:
    """How files are fingerprinted in one `value_fingerprint` call, and which kinds decided.

    Args:
        content: hash local files' bytes instead of their stat fields (remote files: their
            checksum where the filesystem has one, else their bytes through `pyarrow.fs`).
        kinds: filled in with the `FingerprintKind` of every file met.
    """

    content: bool = False
    kinds: set[str] = dataclasses.field(default_factory=set)

    def summary(self) -> str:
        """The kinds that decided, as one label ("stat", "checksum+listing", "value")."""
        return "+".join(sorted(self.kinds)) or FingerprintKind.VALUE.value


def _content_digest(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _local_entry(full: str, options: FingerprintOptions) -> str:
    """One local file: its content hash (when asked), else the stat fields a copy cannot set."""
    st = os.stat(full)
    if options.content:
        options.kinds.add(FingerprintKind.CONTENT)
        return f"{st.st_size}:sha256={_content_digest(full)}"
    options.kinds.add(FingerprintKind.STAT)
    # st_ctime_ns changes on every write, chmod or rename and cannot be set by a user, so a
    # rewrite that restores size and mtime (`cp -p`, `tar -x`, `rsync -a`) is still seen.
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}:{st.st_dev}"


def file_fingerprint(path: str | Path, options: FingerprintOptions | None = None) -> str:
    """A file, or every file under a folder: by stat fields, or by content when asked."""
    options = options if options is not None else FingerprintOptions()
    path = os.path.abspath(path)
    if os.path.isfile(path):
        return f"file:{path}:{_local_entry(path, options)}"
    entries = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            entries.append(f"{os.path.relpath(full, path)}:{_local_entry(full, options)}")
    return f"dir:{path}:" + hashlib.sha256("\n".join(entries).encode()).hexdigest()[:16]


def _remote_fingerprint(uri: str, options: FingerprintOptions | None = None) -> str:
    """The files under a remote URI (hdfs://, s3a://, gs://, ...), listed without a Spark job:
    through the JVM of an active classic SparkSession (the session's connectors and
    credentials), else through `pyarrow.fs` (no JVM: what a Spark Connect client has)."""
    options = options if options is not None else FingerprintOptions()
    from pysetl_dagster.storage.store import active_spark, has_jvm

    spark = active_spark()
    if spark is not None and has_jvm(spark):
        entries = _hadoop_entries(spark, uri, options)
    else:
        entries = _arrow_entries(uri, options)
    if entries is None:
        return f"missing:{uri}"
    return f"uri:{uri}:" + hashlib.sha256("\n".join(sorted(entries)).encode()).hexdigest()[:16]


def _listing_error(uri: str, exc: BaseException) -> Unfingerprintable:
    reason = str(exc).strip().splitlines()
    detail = next((line for line in reason if "Exception" in line), reason[0] if reason else "")
    return Unfingerprintable(f"{uri} cannot be listed: {detail.strip()[:200]}")


def _hadoop_entries(spark: Any, uri: str, options: FingerprintOptions) -> list[str] | None:
    """Each file's checksum (an S3A ETag from the listing, else `getFileChecksum`: HDFS's
    MD5-of-CRCs, S3A's ETag when `fs.s3a.etag.checksum.enabled`), else its size and mtime."""
    jvm: Any = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    entries = []
    try:
        path = jvm.org.apache.hadoop.fs.Path(uri)
        fs = path.getFileSystem(conf)
        if not fs.exists(path):
            return None
        files = fs.listFiles(path, True)
        while files.hasNext():
            st = files.next()
            name = st.getPath().toString()
            checksum = _hadoop_checksum(fs, st)
            if checksum is not None:
                options.kinds.add(FingerprintKind.CHECKSUM)
                entries.append(f"{name}:{st.getLen()}:{checksum}")
            else:
                options.kinds.add(FingerprintKind.LISTING)
                entries.append(f"{name}:{st.getLen()}:{st.getModificationTime()}")
    except Unfingerprintable:
        raise
    except Exception as exc:  # no connector on the classpath, no credentials, no network
        raise _listing_error(uri, exc) from exc
    return entries


def _hadoop_checksum(fs: Any, status: Any) -> str | None:
    try:  # S3A (Hadoop >= 3.3.2): the listing carries the ETag, no extra request
        etag = status.getEtag()
        if etag:
            return f"etag={etag}"
    except Exception:  # not an EtagSource
        pass
    try:
        checksum = fs.getFileChecksum(status.getPath())
    except Exception:  # a filesystem without checksums may also refuse the call
        return None
    if checksum is None:  # the local filesystem, S3A without etag checksums
        return None
    return f"{checksum.getAlgorithmName()}={bytes(checksum.getBytes()).hex()}"


_ARROW_CHECKSUM_KEYS = ("ETag", "etag", "md5Hash", "md5", "crc32c")
"""Object metadata `pyarrow.fs` reports that identifies content: S3's ETag, GCS's MD5/CRC32C."""


def _arrow_entries(uri: str, options: FingerprintOptions) -> list[str] | None:
    """Each file through `pyarrow.fs` (no JVM): the object's checksum from its metadata (one
    HEAD request), its bytes when content was asked and there is none, else size and mtime."""
    from pyarrow import fs as pafs

    from pysetl_dagster.storage.arrow import ArrowFS

    try:
        fs, path, _ = ArrowFS()._resolve(uri)
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            return None
        infos = (
            [info]
            if info.type == pafs.FileType.File
            else [
                i
                for i in fs.get_file_info(pafs.FileSelector(path, recursive=True))
                if i.type == pafs.FileType.File
            ]
        )
        return [_arrow_entry(fs, i, options) for i in infos]
    except Unfingerprintable:
        raise
    except Exception as exc:  # no credentials, no network, no libhdfs
        raise _listing_error(uri, exc) from exc


def _arrow_entry(fs: Any, info: Any, options: FingerprintOptions) -> str:
    checksum = None
    try:
        with fs.open_input_file(info.path) as handle:
            metadata = handle.metadata()
        checksum = next(
            (f"{k}={metadata[k]!r}" for k in _ARROW_CHECKSUM_KEYS if metadata.get(k)), None
        )
    except (OSError, NotImplementedError, AttributeError):
        checksum = None
    if checksum is not None:
        options.kinds.add(FingerprintKind.CHECKSUM)
        return f"{info.path}:{info.size}:{checksum}"
    if options.content:
        options.kinds.add(FingerprintKind.CONTENT)
        digest = hashlib.sha256()
        with fs.open_input_stream(info.path) as stream:
            for chunk in iter(lambda: stream.read(_CHUNK), b""):
                digest.update(chunk)
        return f"{info.path}:{info.size}:sha256={digest.hexdigest()}"
    options.kinds.add(FingerprintKind.LISTING)
    return f"{info.path}:{info.size}:{info.mtime_ns}"


def _path_fingerprint(text: str, options: FingerprintOptions) -> str | None:
    """The fingerprint of a string that names an existing file, folder or remote URI."""
    if "://" in text:
        scheme = text.split("://", 1)[0]
        if scheme == "file":
            local = text[len("file://") :]
            return file_fingerprint(local, options) if os.path.exists(local) else None
        if scheme in {"hdfs", "s3a", "s3", "gs", "abfs", "abfss", "wasb", "wasbs"}:
            return _remote_fingerprint(text, options)
        return None
    if len(text) < 4096 and ("/" in text or os.sep in text or "." in text):
        try:
            if os.path.exists(text):
                return file_fingerprint(text, options)
        except (OSError, ValueError):
            return None
    return None


def value_fingerprint(
    value: Any, _depth: int = 0, *, options: FingerprintOptions | None = None
) -> str:
    """A stable hash of a value's content; raises `Unfingerprintable` saying why not.

    Strings naming existing files, folders or remote URIs count by `file_fingerprint` /
    `_remote_fingerprint`, so an input file rewritten in place changes the fingerprint even
    when its size and mtime were restored. `options` says whether files are hashed by content
    and collects which kinds decided.
    """
    options = options if options is not None else FingerprintOptions()
    if _depth > 20:
        raise Unfingerprintable("nested too deeply")
    if getattr(value, _CONTENT_HASH_ATTR, False) is True and not options.content:
        # this input asks for content hashing: its files (and only its) are read
        inner = FingerprintOptions(content=True, kinds=options.kinds)
        return value_fingerprint(value, _depth, options=inner)
    hook = getattr(value, _FINGERPRINT_HOOK, None)
    if callable(hook) and not isinstance(value, type):
        result = hook()
        if result is None:
            raise Unfingerprintable(f"{type(value).__name__}.pysetl_fingerprint() returned None")
        return _short(f"hook:{result}")
    if value is None or isinstance(value, bool | int | float | complex | bytes):
        return _short(repr(value))
    if isinstance(value, str | Path):
        text = str(value)
        return _short(f"{text}|{_path_fingerprint(text, options) or ''}")
    if isinstance(value, Mapping | set | frozenset) or (
        isinstance(value, list | tuple) and not is_record(value)
    ):
        return _container_fingerprint(value, _depth, options)
    if is_record(value):  # a Dagster @record (e.g. an AutomationCondition): no iteration
        return _short(f"{_type_name(value)}:{value!r}")
    _refuse_data(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return _short(
            f"{_type_name(value)}:{value_fingerprint(fields, _depth + 1, options=options)}"
        )
    dump = getattr(value, "model_dump", None)  # pydantic (a dagster Config)
    if callable(dump):
        return _short(
            f"{_type_name(value)}:{value_fingerprint(dump(), _depth + 1, options=options)}"
        )
    if isinstance(value, type):
        # a class held as a value (`consumers = {A, B}`) counts by name: its code is hashed
        # where code uses it, and hashing it here could cycle (A.consumers holds B, B holds A)
        return _short(f"type:{_type_name(value)}")
    if isinstance(value, types.FunctionType):
        digest, unstable = code_fingerprint(value)
        if unstable:
            raise Unfingerprintable("; ".join(unstable))
        return _short(f"func:{digest}")
    if _is_factory(value):
        # a Factory held as a value (a branch's alternatives): its class's code and its state,
        # without the random `uuid` PySetl gives every instance (which made the branch's code
        # version change on every load)
        digest, unstable = code_fingerprint(type(value))
        if unstable:
            raise Unfingerprintable("; ".join(unstable))
        content = {k: v for k, v in vars(value).items() if k != "uuid" and not _is_handle(v)}
        return _short(
            f"factory:{_type_name(value)}:{digest}:"
            f"{value_fingerprint(content, _depth + 1, options=options)}"
        )
    state = getattr(value, "__dict__", None)
    if isinstance(state, dict) and state:
        content = {k: v for k, v in state.items() if not _is_handle(v)}
        return _short(
            f"{_type_name(value)}:{value_fingerprint(content, _depth + 1, options=options)}"
        )
    text = stable_repr(value)
    if not _stable(repr(value)):
        raise Unfingerprintable(f"a {_type_name(value)} shows no content to hash")
    return _short(f"{_type_name(value)}:{text}")


def _container_fingerprint(value: Any, depth: int, options: FingerprintOptions) -> str:
    """A mapping's pairs, a set's members (both order-free) or a sequence's items."""

    def member(item: Any) -> str:
        return value_fingerprint(item, depth + 1, options=options)

    if isinstance(value, Mapping):
        return _short("map:" + repr(sorted((member(k), member(v)) for k, v in value.items())))
    if isinstance(value, set | frozenset):
        return _short("set:" + repr(sorted(member(v) for v in value)))
    return _short("seq:" + repr([member(v) for v in value]))


def _refuse_data(value: Any) -> None:
    """In-memory datasets are not hashed: that would mean reading them (a Spark job, or the
    whole pandas frame on the driver)."""
    module = type(value).__module__ or ""
    if module.startswith(("pyspark.", "pandas.", "polars.")) or type(value).__name__ in {
        "DataFrame",
        "DataSet",
        "Series",
    }:
        raise Unfingerprintable(
            f"a {_type_name(value)} is data in memory; give the Factory a path-based source "
            "(its files are fingerprinted by size and time) or a pysetl_fingerprint() method"
        )


_HANDLE_MODULES = (
    "pyspark.sql.session",
    "pyspark.core",
    "pyspark.context",
    "py4j",
    "threading",
    "_thread",
    "logging",
    "concurrent",
)


def _is_factory(value: Any) -> bool:
    """Whether `value` is a PySetl Factory instance."""
    from pysetl.workflow import Factory

    return isinstance(value, Factory)


def _is_handle(value: Any) -> bool:
    """A session, a JVM object, a lock or a logger held by an input object: how it reaches the
    data, not what the data is, so it is left out of the fingerprint."""
    module = type(value).__module__ or ""
    return module.startswith(_HANDLE_MODULES)


def _type_name(value: Any) -> str:
    tp = value if isinstance(value, type) else type(value)
    return f"{tp.__module__}.{tp.__qualname__}"


def _short(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
