"""Start and stop pyspark's own Spark Connect server on a loopback port.

A run process that talks to a Connect server starts no JVM: the server owns the JVM, the
executors (``local[N]``) and the data, and every run connects in well under a second. This
module is what ``scripts/dev`` and the test session use to get such a server: pyspark ships the
server (``jars/spark-connect_*.jar``) and its start script (``sbin/start-connect-server.sh``),
so nothing beyond the ``pyspark`` package and a Java runtime is needed.

The server is started as that script's ``--wait`` mode starts it (``bin/spark-submit --class
SparkConnectServer``), without the script's daemon wrapper and its shared ``/tmp`` pid file:
the JVM is the caller's own child, in its own process group, so `ConnectServer.stop` ends it
and anything it spawned (Python workers), nothing outlives its owner, and servers of several
owners coexist. Its output and working files (``metastore_db``, ``spark-warehouse``) stay under
the given log folder.

Usage::

    with start_connect_server(Path(".dagster_home/connect"), master="local[2]") as server:
        spark = SparkSession.builder.remote(server.url).create()

or from a shell (prints the URL, serves until SIGINT/SIGTERM)::

    python -m pysetl_dagster.spark.connect_server --log-dir .dagster_home/connect
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from pysetl_dagster.errors import PySetlSparkError

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
"""The server's main class (what ``start-connect-server.sh`` submits)."""

LOG_FILE = "connect-server.log"
"""The server's output (script, spark-submit and the JVM's log4j console) under the log folder."""

_BIND_ERRORS = ("Address already in use", "BindException", "Failed to bind")


class ConnectServerError(PySetlSparkError):
    """The Connect server cannot start: no Java, a busy port, or it exited or timed out."""


@dataclass
class ConnectServer:
    """A running Spark Connect server started by `start_connect_server`.

    Attributes:
        host: The loopback address it listens on.
        port: Its gRPC port.
        log_dir: The folder of its log (`log_file`), pid file and working files.
        process: The server's JVM process.
    """

    host: str
    port: int
    log_dir: Path
    process: subprocess.Popen[bytes] = field(repr=False)
    """The server's JVM (``spark-submit`` execs it), leader of its own process group."""

    @property
    def url(self) -> str:
        """The ``sc://`` URL a client (``SparkSession.builder.remote``) connects to."""
        return f"sc://{self.host}:{self.port}"

    @property
    def log_file(self) -> Path:
        """The server's log: read it when a run reports the server unreachable."""
        return self.log_dir / LOG_FILE

    @property
    def running(self) -> bool:
        """Whether the server's process is still alive."""
        return self.process.poll() is None

    def stop(self, timeout_s: float = 20.0) -> None:
        """Stop the server's whole process tree: SIGTERM (a clean Spark shutdown), then SIGKILL.

        Safe to call twice and after the server died on its own.

        Args:
            timeout_s: How long to wait for a clean shutdown before killing.
        """
        _stop_group(self.process, timeout_s)

    def kill(self) -> None:
        """Kill the server at once (SIGKILL, no shutdown): what a crashed server looks like."""
        _signal_group(self.process, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)

    def __enter__(self) -> ConnectServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def spark_home() -> Path:
    """The Spark distribution the installed ``pyspark`` package carries (its ``sbin``, ``jars``).

    ``SPARK_HOME`` wins when set and holds ``bin/spark-submit``, as with Spark's own scripts.
    """
    env = os.environ.get("SPARK_HOME")
    if env and (Path(env) / "bin" / "spark-submit").is_file():
        return Path(env)
    import pyspark  # the package is the distribution since pyspark 3.x; imported on use only

    return Path(pyspark.__file__).resolve().parent


def find_java() -> str:
    """The ``java`` executable Spark's scripts would use, or a one-line error saying what to do."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise ConnectServerError(
            "Spark Connect server: Java not found ('java' is not on PATH and JAVA_HOME is not "
            "set): install Java 17+ (e.g. 'apt-get install openjdk-17-jre-headless') or set "
            "JAVA_HOME."
        )
    return found


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it), for a server to bind next."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether ``host:port`` can be bound (so no other server holds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def start_connect_server(
    log_dir: Path | str,
    *,
    master: str = "local[2]",
    port: int | None = None,
    host: str = "127.0.0.1",
    driver_memory: str | None = None,
    conf: Mapping[str, str] | None = None,
    timeout_s: float = 180.0,
    check_session: bool = True,
) -> ConnectServer:
    """Start pyspark's Spark Connect server and wait until it accepts a session.

    Args:
        log_dir: Folder for the server's log, pid file and working files (created).
        master: The server's ``spark.master``; ``local[N]`` runs N executor threads in its JVM.
        port: The gRPC port; ``None`` picks a free one.
        host: The address to bind; loopback by default, so the server is not exposed.
        driver_memory: The server JVM's heap (``--driver-memory``), e.g. ``"2g"``.
        conf: More Spark properties for the server (``--conf key=value``; they win over the
            defaults: no UI, log level WARN).
        timeout_s: How long to wait for the server to accept a session.
        check_session: Open (and close) one Connect session before returning, so the server
            is known to serve, not only to listen. Imports the Connect client.

    Returns:
        The running server; stop it with `ConnectServer.stop` (or use it as a context manager).

    Raises:
        ConnectServerError: Java is missing, the port is busy, or the server exited or did not
            accept a session within ``timeout_s`` (the message names its log). The server is
            stopped before raising.
    """
    java = find_java()
    if port is None:
        port = free_port(host)
    elif not port_is_free(port, host):
        raise ConnectServerError(
            f"Spark Connect server: port {host}:{port} is busy: stop what listens there "
            "(e.g. an earlier Connect server), or choose another port."
        )
    folder = Path(log_dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    log_file = folder / LOG_FILE
    home = spark_home()
    env = dict(os.environ)
    env.update(
        SPARK_HOME=str(home),
        SPARK_LOG_DIR=str(folder),
        PYSPARK_PYTHON=env.get("PYSPARK_PYTHON", sys.executable),
    )
    if "JAVA_HOME" not in env:
        env["JAVA_HOME"] = str(Path(java).resolve().parent.parent)
    # what `sbin/start-connect-server.sh --wait` runs, minus its two wrapping shells: the
    # spark-submit script execs the JVM, so `process` IS the server and is reaped by its owner
    command = [
        str(home / "bin" / "spark-submit"),
        "--class",
        SERVER_CLASS,
        "--name",
        "Spark Connect server",
        "--master",
        master,
        "--conf",
        f"spark.connect.grpc.binding.address={host}",
        "--conf",
        f"spark.connect.grpc.binding.port={port}",
        "--conf",
        "spark.ui.enabled=false",
        "--conf",
        "spark.log.level=WARN",  # the log keeps warnings and errors, not each request
        "--conf",
        f"spark.sql.warehouse.dir={folder / 'spark-warehouse'}",
    ]
    if driver_memory:
        command += ["--driver-memory", driver_memory]
    for key, value in (conf or {}).items():
        command += ["--conf", f"{key}={value}"]
    with log_file.open("ab") as out:
        process = subprocess.Popen(
            command,
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends its children too
        )
    server = ConnectServer(host=host, port=port, log_dir=folder, process=process)
    try:
        _wait_until_serving(server, timeout_s, check_session)
    except BaseException:
        server.stop(timeout_s=5.0)
        raise
    return server


def _wait_until_serving(server: ConnectServer, timeout_s: float, check_session: bool) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if not server.running:
            raise ConnectServerError(_exit_message(server))
        if _accepts(server.host, server.port):
            break
        if time.monotonic() > deadline:
            raise ConnectServerError(
                f"Spark Connect server: not listening on {server.url} after {timeout_s:.0f} s; "
                f"see {server.log_file}."
            )
        time.sleep(0.2)
    if check_session:
        _open_session(server.url)


def _accepts(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _open_session(url: str) -> None:
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    session = ConnectSession.builder.remote(url).create()
    try:
        session.version  # noqa: B018 (one round trip: the server answers for a session)
    finally:
        session.stop()


def _exit_message(server: ConnectServer) -> str:
    tail = _log_tail(server.log_file)
    if any(marker in tail for marker in _BIND_ERRORS):
        return (
            f"Spark Connect server: port {server.host}:{server.port} is busy (another process "
            f"took it): stop that process or choose another port; see {server.log_file}."
        )
    last = next((line for line in reversed(tail.splitlines()) if line.strip()), "")
    return (
        f"Spark Connect server exited with code {server.process.returncode} before serving "
        f"({last.strip()[:200]}); see {server.log_file}."
    )


def _log_tail(path: Path, size: int = 20_000) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - size))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def _stop_group(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    if process.poll() is None:
        _signal_group(process, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout_s)
    # whatever the JVM spawned (Python workers) is in its group: end it too
    _signal_group(process, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def warm_up(url: str, folder: Path) -> float:
    """Run once, on a fresh server, what a pipeline's first run asks of it: a CSV read with
    schema inference, an aggregate, a join, a window, a regex, an observed Parquet write and a
    read back. A fresh server JVM spends seconds on each first query (class loading, JIT,
    codegen): measured on the example, its first Stage took 10 s on a fresh server and 3 s on
    a warmed one. Best effort: a failure is logged to the server's folder, never raised.

    Args:
        url: The server's ``sc://`` URL.
        folder: Where the workload's few files go (removed afterwards).

    Returns:
        The seconds the warm-up took.
    """
    start = time.monotonic()
    work = Path(folder) / "warm-up"
    try:
        from pyspark.sql.connect import functions as F
        from pyspark.sql.connect.session import SparkSession as ConnectSession
        from pyspark.sql.connect.window import Window

        work.mkdir(parents=True, exist_ok=True)
        rows = "\n".join(f"{i},k{i % 7},{i * 1.5},a{i}@example.com" for i in range(200))
        (work / "in.csv").write_text("id,k,v,email\n" + rows + "\n")
        session = ConnectSession.builder.remote(url).create()
        try:
            df = session.read.csv(str(work / "in.csv"), header=True, inferSchema=True)
            totals = df.groupBy("k").agg(F.sum("v").alias("total"), F.countDistinct("id"))
            ranked = df.join(totals, "k").withColumn(
                "rank", F.rank().over(Window.partitionBy("k").orderBy(F.desc("v")))
            )
            checked = ranked.observe(
                "warm_up",
                F.count(F.lit(1)).alias("rows"),
                F.sum(F.when(~F.col("email").rlike(r"^[^@]+@[^@]+$"), 1).otherwise(0)).alias("bad"),
            )
            checked.write.mode("overwrite").parquet(str(work / "out"))
            session.read.parquet(str(work / "out")).filter(F.col("rank") <= 3).count()
        finally:
            session.stop()
    except Exception as exc:  # a warm-up never stops the server
        with contextlib.suppress(OSError), (Path(folder) / "warm-up-error.txt").open("w") as out:
            out.write(f"{type(exc).__name__}: {exc}\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return time.monotonic() - start


def _alive(pid: int | None) -> bool:
    """Whether process `pid` still exists (always true for None)."""
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGINT/SIGTERM; print the URL first (for ``scripts/dev``)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--log-dir", required=True, type=Path)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--driver-memory", default=None)
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument(
        "--warm-up",
        action="store_true",
        help="after printing the URL, run one small pipeline-like workload on the server so "
        "the first run does not pay its JIT and class loading (scripts/dev passes it)",
    )
    parser.add_argument(
        "--parent-pid",
        type=int,
        default=None,
        help="stop the server when this process is gone (scripts/dev passes its own pid, so "
        "a killed script leaves no server behind)",
    )
    args = parser.parse_args(argv)
    stop = False
    serving = False

    def _on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True
        if not serving:  # still starting: abort the start (it stops the JVM it began)
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        server = start_connect_server(
            args.log_dir,
            master=args.master,
            port=args.port,
            driver_memory=args.driver_memory,
            timeout_s=args.timeout,
        )
    except ConnectServerError as exc:
        print(exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    serving = True
    print(server.url, flush=True)
    try:
        if args.warm_up and not stop:
            warm_up(server.url, server.log_dir)
        while not stop and server.running and _alive(args.parent_pid):
            time.sleep(0.5)
    finally:
        server.stop()
    return 0 if stop else 1


if __name__ == "__main__":
    sys.exit(main())
