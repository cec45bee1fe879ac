"""The production deployment of docker/, without Docker: one stack per test session.

PostgreSQL (Debian's package, run as an unprivileged user in a temporary data folder), the
user-code gRPC server, the Dagster daemon and the webserver, all on 127.0.0.1 free ports and
all reading `docker/dagster.yaml` unchanged. Every process is stopped when the session ends,
whatever happened.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import pytest
from dagster_graphql import DagsterGraphQLClient

from tests.conftest import ROOT

DOCKER = ROOT / "docker"
PG_USER = "dagster"
PG_PASSWORD = "stack-pg-Passw0rd-e2e"
PROFILE = "e2e"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def wait_for(what: str, check: Callable[[], bool], timeout: float, logs: list[Path]) -> None:
    """Poll `check` until it is true; fail with the tails of `logs` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(1)
    tails = "\n".join(f"--- {p}\n{p.read_text()[-3000:]}" for p in logs if p.exists())
    pytest.fail(f"{what} not ready after {timeout:.0f} s\n{tails}")


def postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not found:
        pytest.fail("PostgreSQL is not installed: scripts/test installs it (apt-get postgresql).")
    return Path(found[-1]).parent


@dataclass
class Proc:
    name: str
    args: list[str]
    log: Path
    env: dict[str, str]
    user: str | None = None
    popen: subprocess.Popen[bytes] | None = None
    _out: TextIO | None = None

    def start(self) -> None:
        self._out = open(self.log, "a")  # noqa: SIM115
        args = ["runuser", "-u", self.user, "--", *self.args] if self.user else self.args
        self.popen = subprocess.Popen(
            args, cwd=ROOT, env=self.env, stdout=self._out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def stop(self) -> None:
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)
        self.popen = None
        if self._out:
            self._out.close()


@dataclass
class ProdStack:
    """The running stack: its folders, ports, environment and a GraphQL client."""

    home: Path
    storage: Path
    logs: Path
    env: dict[str, str]
    web_port: int
    procs: dict[str, Proc] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def client(self) -> DagsterGraphQLClient:
        return DagsterGraphQLClient("127.0.0.1", port_number=self.web_port, timeout=60)

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.client()._execute(query, variables)  # type: ignore[no-any-return]

    def wait_webserver(self) -> None:
        wait_for(
            "dagster-webserver with the retail code location",
            lambda: bool(self.graphql(ASSET_NODES)["assetNodes"]),
            180,
            [self.procs["webserver"].log, self.procs["code_server"].log],
        )

    def restart_webserver(self) -> None:
        self.procs["webserver"].stop()
        self.procs["webserver"].start()
        self.wait_webserver()

    def wait_run(self, run_id: str, timeout: float = 300) -> str:
        client = self.client()
        deadline = time.monotonic() + timeout
        status = "UNKNOWN"
        while time.monotonic() < deadline:
            status = client.get_run_status(run_id).value
            if status in ("SUCCESS", "FAILURE", "CANCELED"):
                return status
            time.sleep(2)
        return status


ASSET_NODES = "query { assetNodes { assetKey { path } } }"
RUNS = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter) { ... on Runs { results { runId status tags { key value } } } }
}
"""
SCHEDULE = """
query Schedule($selector: ScheduleSelector!) {
  scheduleOrError(scheduleSelector: $selector) {
    __typename
    ... on Schedule { scheduleState { id status } }
    ... on Error { message }
  }
}
"""
STOP_SCHEDULE = """
mutation Stop($id: String!) {
  stopRunningSchedule(id: $id) {
    ... on ScheduleStateResult { scheduleState { status } }
    ... on PythonError { message }
  }
}
"""
SELECTOR = {
    "repositoryLocationName": "retail",
    "repositoryName": "__repository__",
    "scheduleName": "retail_daily",
}


@pytest.fixture(scope="session")
def scheduled_run(prod_stack: ProdStack) -> str:
    """The first run the daemon starts by itself for the every-minute schedule."""
    state = prod_stack.graphql(SCHEDULE, {"selector": SELECTOR})["scheduleOrError"]
    assert state["__typename"] == "Schedule", state.get("message", "")[:600]
    assert state["scheduleState"]["status"] == "RUNNING"  # the profile turned schedules on
    deadline = time.monotonic() + 130  # the next minute boundary plus a daemon tick
    runs: list[dict[str, object]] = []
    while time.monotonic() < deadline and not runs:
        runs = prod_stack.graphql(
            RUNS, {"filter": {"tags": [{"key": "dagster/schedule_name", "value": "retail_daily"}]}}
        )["runsOrError"]["results"]
        time.sleep(3)
    # One run is enough: stop the schedule so it does not load the machine for the rest.
    stopped = prod_stack.graphql(STOP_SCHEDULE, {"id": state["scheduleState"]["id"]})
    assert stopped["stopRunningSchedule"]["scheduleState"]["status"] == "STOPPED", stopped
    assert runs, "the daemon started no run for the every-minute schedule within 130 s:\n" + (
        prod_stack.procs["daemon"].log.read_text()[-3000:]
    )
    return str(runs[-1]["runId"])


@pytest.fixture(scope="session")
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("prometheus-pushgateway") or "/usr/bin/prometheus-pushgateway"
    assert Path(binary).exists(), "scripts/test installs the Debian package prometheus-pushgateway"
    address = f"127.0.0.1:{free_port()}"
    log = tmp_path_factory.mktemp("pushgateway") / "pushgateway.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [binary, f"--web.listen-address={address}"], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://{address}/-/ready", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("the Pushgateway did not start:\n" + log.read_text()[-2000:])
                time.sleep(0.2)
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _start_postgres(tmp: Path, logs: Path) -> tuple[Proc, int]:
    bindir = postgres_bin()
    user = None
    data = tmp / "pgdata"
    pwfile = tmp / "pgpass"
    pwfile.write_text(PG_PASSWORD + "\n")
    if os.geteuid() == 0:  # PostgreSQL refuses root: run it as the package's user.
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("user 'postgres' is missing: reinstall the postgresql package.")
        user = "postgres"
        os.chown(tmp, pw.pw_uid, pw.pw_gid)
        os.chown(pwfile, pw.pw_uid, pw.pw_gid)
    prefix = ["runuser", "-u", user, "--"] if user else []
    init = subprocess.run(
        [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", PG_USER, f"--pwfile={pwfile}",
         "-A", "scram-sha-256", "-E", "UTF8", "--no-sync"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if init.returncode != 0:
        pytest.fail(f"initdb failed:\n{init.stdout}\n{init.stderr}")
    port = free_port()
    proc = Proc(
        "postgres",
        [str(bindir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port),
         "-k", str(tmp), "-c", "fsync=off", "-c", "max_connections=100"],
        logs / "postgres.log", dict(os.environ), user=user,
    )  # fmt: skip
    (logs / "postgres.log").touch()
    proc.start()

    def ready() -> bool:
        import psycopg2

        conn = psycopg2.connect(
            host="127.0.0.1", port=port, user=PG_USER, password=PG_PASSWORD, dbname="postgres"
        )
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = 'dagster'")
            if cur.fetchone() is None:
                cur.execute("CREATE DATABASE dagster")
        conn.close()
        return True

    wait_for("PostgreSQL", ready, 60, [logs / "postgres.log"])
    return proc, port


def write_profile(path: Path, storage: Path, extra: str = "") -> None:
    """The example's profiles plus `e2e`: prod on this machine (local Spark, every minute)."""
    path.write_text(
        (ROOT / "definitions" / "profiles.yaml").read_text()
        + f"""
{PROFILE}:
  extends: prod
  spark:
    master: "local[1]"
    config:
      spark.sql.shuffle.partitions: "2"
      spark.ui.enabled: "false"
  storage:
    root: "{storage}"
  schedules:
    enabled: true
    cron: "* * * * *"
{extra}"""
    )


@pytest.fixture(scope="session")
def prod_stack(pushgateway: str) -> Iterator[ProdStack]:
    tmp = Path(tempfile.mkdtemp(prefix="pysetl-prod-stack-"))
    home, storage, logs = tmp / "home", tmp / "storage", tmp / "logs"
    for d in (home, storage, logs):
        d.mkdir()
    procs: dict[str, Proc] = {}
    try:
        pg, pg_port = _start_postgres(tmp, logs)
        procs["postgres"] = pg
        shutil.copy(DOCKER / "dagster.yaml", home / "dagster.yaml")  # the very same file
        profile_file = tmp / "profiles.yaml"
        # the profile sends run metrics to the Pushgateway (sensors the daemon runs)
        write_profile(profile_file, storage, f"  metrics:\n    pushgateway: {pushgateway}\n")
        grpc_port = free_port()
        (home / "workspace.yaml").write_text(
            "load_from:\n  - grpc_server:\n      host: 127.0.0.1\n"
            f"      port: {grpc_port}\n      location_name: retail\n"
        )
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(pg_port),
            "DAGSTER_PG_USER": PG_USER,
            "DAGSTER_PG_PASSWORD": PG_PASSWORD,
            "DAGSTER_PG_DB": "dagster",
            "PYSETL_DAGSTER_PROFILE": PROFILE,
            "PYSETL_DAGSTER_PROFILE_FILE": str(profile_file),
            "PYTHONPATH": str(ROOT),
            "PYSPARK_PYTHON": sys.executable,
        }
        env.pop("PYSETL_DAGSTER_STORAGE", None)
        bin_dir = Path(sys.executable).parent
        web_port = free_port()
        workspace = str(home / "workspace.yaml")
        procs["code_server"] = Proc(
            "code_server",
            [str(bin_dir / "dagster"), "code-server", "start", "-h", "127.0.0.1",
             "-p", str(grpc_port), "-m", "definitions", "--location-name", "retail"],
            logs / "code_server.log", env,
        )  # fmt: skip
        procs["daemon"] = Proc(
            "daemon", [str(bin_dir / "dagster-daemon"), "run", "-w", workspace],
            logs / "daemon.log", env,
        )  # fmt: skip
        procs["webserver"] = Proc(
            "webserver",
            [str(bin_dir / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(web_port),
             "-w", workspace],
            logs / "webserver.log", env,
        )  # fmt: skip
        procs["code_server"].start()
        wait_for(
            "the user-code gRPC server",
            lambda: port_open(grpc_port),
            120,
            [logs / "code_server.log"],
        )
        procs["daemon"].start()
        procs["webserver"].start()
        stack = ProdStack(home, storage, logs, env, web_port, procs)
        stack.wait_webserver()
        yield stack
    finally:
        for name in ("webserver", "daemon", "code_server", "postgres"):
            if name in procs:
                procs[name].stop()
        shutil.rmtree(tmp, ignore_errors=True)
