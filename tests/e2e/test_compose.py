"""docker/compose.yaml agrees with itself, the files it names, dagster.yaml and the prod profile.

No Docker engine runs here; tests/fixtures/prod_stack.py starts the same processes from the same
dagster.yaml. This checks that what compose would start is wired the same way.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from definitions import PROFILES_FILE
from pysetl_dagster import load_profile
from tests.conftest import ROOT

DOCKER = ROOT / "docker"
DAGSTER_SERVICES = ("user_code", "dagster_webserver", "dagster_daemon")


def _compose() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())  # type: ignore[no-any-return]


def _env_names(node: Any) -> set[str]:
    """Every `{env: NAME}` in a dagster.yaml tree."""
    if isinstance(node, dict):
        if set(node) == {"env"}:
            return {node["env"]}
        return set().union(*(_env_names(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(_env_names(v) for v in node)) if node else set()
    return set()


def test_services_and_built_files_exist() -> None:
    services = _compose()["services"]
    assert set(services) == {
        "postgres", "user_code", "dagster_webserver", "dagster_daemon", "spark-master",
        "spark-worker", "spark-connect",
    }  # fmt: skip
    build = services["user_code"]["build"]
    context = (DOCKER / build["context"]).resolve()
    dockerfile = context / build["dockerfile"]
    assert dockerfile.is_file()
    # Every COPY source of the Dockerfile exists in the build context.
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (context / source).exists(), f"Dockerfile copies missing {source}"
    # The other services run the image user_code builds; each depends_on names a service.
    for name, service in services.items():
        if name != "postgres":
            assert service["image"] == services["user_code"]["image"], name
        for dep in service.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown {dep}"


def test_mounted_files_and_volumes_exist() -> None:
    compose = _compose()
    for name, service in compose["services"].items():
        for mount in service.get("volumes", []):
            source, target = mount.split(":")[:2]
            if source.startswith("."):
                assert (DOCKER / source).is_file(), f"{name} mounts missing {source}"
            else:
                assert source in compose["volumes"], f"{name} mounts undeclared volume {source}"
            assert target.startswith("/")


def test_dagster_services_agree_with_dagster_yaml_and_workspace() -> None:
    services = _compose()["services"]
    instance = yaml.safe_load((DOCKER / "dagster.yaml").read_text())
    assert instance["run_storage"]["module"] == "dagster_postgres.run_storage"
    assert instance["event_log_storage"]["module"] == "dagster_postgres.event_log"
    assert instance["schedule_storage"]["module"] == "dagster_postgres.schedule_storage"
    needed = _env_names(instance)
    assert needed >= {"DAGSTER_PG_HOST", "DAGSTER_PG_PASSWORD"}
    workspace = yaml.safe_load((DOCKER / "workspace.yaml").read_text())
    (location,) = workspace["load_from"]
    grpc = location["grpc_server"]
    for name in DAGSTER_SERVICES:
        service = services[name]
        env = service["environment"]
        assert needed <= set(env), f"{name} lacks {needed - set(env)}"
        home = env["DAGSTER_HOME"]
        mounts = {m.split(":")[1]: m.split(":")[0] for m in service["volumes"]}
        assert mounts[f"{home}/dagster.yaml"] == "./dagster.yaml", name
        assert mounts[f"{home}/workspace.yaml"] == "./workspace.yaml", name
        assert "${" in env["DAGSTER_PG_PASSWORD"]  # from the environment, never a value
        assert env["DAGSTER_PG_HOST"] in services  # postgres by service name
    postgres_env = services["postgres"]["environment"]
    env = services["user_code"]["environment"]
    assert (env["DAGSTER_PG_USER"], env["DAGSTER_PG_DB"]) == (
        postgres_env["POSTGRES_USER"], postgres_env["POSTGRES_DB"],
    )  # fmt: skip
    assert env["DAGSTER_PG_PORT"] == "5432"
    # The webserver and daemon reach the code server where it listens.
    assert grpc["host"] in services
    command = services[grpc["host"]]["command"]
    assert command[command.index("-p") + 1] == str(grpc["port"])
    assert str(grpc["port"]) in services[grpc["host"]]["expose"]
    assert command[command.index("--location-name") + 1] == location["grpc_server"]["location_name"]
    web = services["dagster_webserver"]["command"]
    port = web[web.index("-p") + 1]
    assert f"{port}:{port}" in services["dagster_webserver"]["ports"]


def test_prod_profile_points_at_the_compose_cluster_and_volume() -> None:
    services = _compose()["services"]
    prod = load_profile(PROFILES_FILE, "prod")
    match = re.fullmatch(r"spark://([\w-]+):(\d+)", prod.spark.master)
    assert match, prod.spark.master
    host, port = match.groups()
    master = services[host]["command"]
    assert master[master.index("--port") + 1] == port
    assert any(prod.spark.master in str(arg) for arg in services["spark-worker"]["command"])
    assert services["user_code"]["environment"]["PYSETL_DAGSTER_PROFILE"] == "prod"
    # Runs are clients of the Connect server, which is a driver on the same master.
    remote = re.fullmatch(r"sc://([\w-]+):(\d+)", prod.spark.remote or "")
    assert remote, prod.spark.remote
    connect_host, connect_port = remote.groups()
    connect = services[connect_host]["command"]
    assert "org.apache.spark.sql.connect.service.SparkConnectServer" in connect
    assert connect[connect.index("--master") + 1] == prod.spark.master
    assert f"spark.connect.grpc.binding.port={connect_port}" in connect
    assert connect_port in services[connect_host]["expose"]
    assert connect_host in services["user_code"]["depends_on"]
    # Driver (user_code) and executors (spark-worker) see the same storage root.
    for name in ("user_code", "spark-worker", "spark-connect"):
        targets = [m.split(":")[1] for m in services[name]["volumes"]]
        assert prod.storage.root in targets, name
    assert Path(prod.storage.root or "").is_absolute()
