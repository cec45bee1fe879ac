"""`pysetl-dagster init` / `new factory` and `dg scaffold defs`: one command to a project whose
tests pass and that `dg` lists, checks and serves. One scaffolded project for the module, made
as a new user makes it: the installed `pysetl-dagster` command in an empty folder, then `new
factory` and `dg scaffold defs pysetl_dagster.PySetlPipelineComponent my_pipeline` inside it.
Nothing is installed: the project's tests find `src/` through its own pytest settings, and
`dg` through PYTHONPATH (what `pip install -e .` gives a user)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pysetl_dagster.cli.main import main
from tests.conftest import ROOT

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty folder: where the user runs `pysetl-dagster init`."""
    return tmp_path_factory.mktemp("scaffold")


@pytest.fixture(scope="module")
def env(workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The user's environment: this venv on PATH, a Dagster home (outside the folder), the
    project's `src/` and this checkout (the installed pysetl-dagster) on PYTHONPATH."""
    home = tmp_path_factory.mktemp("dagster_home")
    # `dg dev` starts a queued run within a second (as scripts/dev), not Dagster's 5 s
    (home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\nrun_queue:\n  dequeue_interval_seconds: 1\n"
    )
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PYTHONPATH": os.pathsep.join([str(workspace / "shop" / "src"), str(ROOT)]),
        "PYSPARK_PYTHON": sys.executable,
        "VIRTUAL_ENV": sys.prefix,
        "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
    }


@pytest.fixture(scope="module")
def project(workspace: Path, env: dict[str, str]) -> Path:
    """`pysetl-dagster init shop` in the empty folder, then, inside the project,
    `pysetl-dagster new factory EnrichOrders` and `dg scaffold defs
    pysetl_dagster.PySetlPipelineComponent my_pipeline`."""
    assert not any(workspace.iterdir())
    done = _run(workspace, env, str(BIN / "pysetl-dagster"), "init", "shop")
    assert done.returncode == 0, done.stdout + done.stderr
    root = workspace / "shop"
    done = _run(root, env, str(BIN / "pysetl-dagster"), "new", "factory", "EnrichOrders")
    assert done.returncode == 0, done.stdout + done.stderr
    done = _run(
        root, env, str(BIN / "dg"), "scaffold", "defs",
        "pysetl_dagster.PySetlPipelineComponent", "my_pipeline",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return root


def _main(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _run(project: Path, env: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(command), cwd=project, env=env, capture_output=True, text=True, timeout=600
    )


def test_the_project_has_its_parts_and_no_machine_path(project: Path) -> None:
    files = {str(p.relative_to(project)) for p in project.rglob("*") if p.is_file()}
    assert {
        "pyproject.toml",
        "README.md",
        "src/shop/definitions.py",
        "src/shop/pipeline.py",
        "src/shop/factories/clean_records.py",
        "src/shop/factories/enrich_orders.py",
        "src/shop/defs/shop/defs.yaml",
        "src/shop/data/sample.csv",
        "src/shop/defs/my_pipeline/defs.yaml",  # dg scaffold defs
        "src/shop/defs/my_pipeline/pipeline.py",
        "src/shop/defs/my_pipeline/my_pipeline_records.py",
        "tests/conftest.py",
        "tests/test_clean_records.py",
        "tests/test_enrich_orders.py",
        "tests/test_pipeline.py",
    } <= files
    factory = (project / "src/shop/factories/clean_records.py").read_text()
    assert "Delivery[" in factory and "pa.DataFrameModel" in factory
    for path in project.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            text = path.read_text()
            for machine in (str(project.parent), str(ROOT), str(Path.home()), sys.prefix):
                assert machine not in text, f"{path} names {machine}"


def test_the_project_tests_pass_on_creation(project: Path, env: dict[str, str]) -> None:
    """The sample Factory's test, the new Factory's test and a real materialization; `src/`
    comes from the project's own pytest settings, not from PYTHONPATH."""
    own = {**env, "PYTHONPATH": str(ROOT)}
    result = _run(project, own, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "3 passed" in result.stdout


def test_dg_lists_the_sample_asset_with_its_checks_job_and_schedule(
    project: Path, env: dict[str, str]
) -> None:
    """`dg list defs`: init's component and the one `dg scaffold defs` wrote beside it."""
    result = _run(project, env, str(BIN / "dg"), "list", "defs", "--json")
    assert result.returncode == 0, result.stderr[-4000:]
    listed = json.loads(result.stdout[result.stdout.index("{") :])
    assets = {a["asset_key"]: a for a in listed["assets"]}
    assert {"clean_records", "clean_records_source"} <= set(assets)
    assert assets["clean_records"]["source"].startswith("src/shop/defs/shop/defs.yaml")
    assert {"key": "pipeline", "value": "shop"} in assets["clean_records"]["tags"]
    assert "clean_records:amount__greater_than_or_equal_to" in {
        c["key"] for c in listed["asset_checks"]
    }
    assert {"shop_assets", "shop_stages"} <= {j["name"] for j in listed["jobs"]}
    # what `dg scaffold defs pysetl_dagster.PySetlPipelineComponent my_pipeline` wrote
    scaffolded = assets["my_pipeline_records"]
    assert scaffolded["source"].startswith("src/shop/defs/my_pipeline/defs.yaml")
    assert {"key": "pipeline", "value": "my_pipeline"} in scaffolded["tags"]
    assert "my_pipeline_records:amount__greater_than_or_equal_to" in {
        c["key"] for c in listed["asset_checks"]
    }
    assert {"my_pipeline_assets", "my_pipeline_stages"} <= {j["name"] for j in listed["jobs"]}
    assert sorted(s["name"] for s in listed["schedules"]) == ["my_pipeline_daily", "shop_daily"]


@pytest.fixture
def misspelled(project: Path) -> Iterator[Path]:
    """A second component whose `schedules` is misspelled on line 7 (removed afterwards)."""
    folder = project / "src" / "shop" / "defs" / "typo"
    folder.mkdir()
    (folder / "defs.yaml").write_text(
        "type: pysetl_dagster.PySetlPipelineComponent\n"
        "\n"
        "attributes:\n"
        "  pipeline: shop.pipeline:build_pipeline\n"
        "  name: typo\n"
        "  key_prefix: typo\n"
        "  schedulez:\n"
        "    - cron: '0 2 * * *'\n"
    )
    yield folder
    shutil.rmtree(folder)


def test_dg_check_defs_names_the_file_line_and_key_of_a_misspelled_attribute(
    project: Path, env: dict[str, str], misspelled: Path
) -> None:
    result = _run(project, env, str(BIN / "dg"), "check", "defs")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    # dg's YAML pass validates one file per component type (it keys files by type), so the
    # typo may surface in the load that follows: both name the file, line and key
    assert "shop/defs/typo/defs.yaml:7" in output, output[-3000:]
    assert "attributes.schedulez" in output, output[-3000:]


def test_init_and_new_refuse_with_one_line_saying_what_to_do(project: Path, tmp_path: Path) -> None:
    code, _, err = _main("init", "shop", "--dir", str(project.parent))
    assert code == 1 and "exists and is not empty" in err
    code, _, err = _main("init", "1shop", "--dir", str(tmp_path))
    assert code == 1 and "does not make a Python package name" in err
    code, _, err = _main("new", "factory", "EnrichOrders", "--project", str(project))
    assert code == 1 and "enrich_orders.py exists" in err
    code, _, err = _main("new", "factory", "Thing", "--project", str(tmp_path))
    assert code == 1 and "pysetl-dagster init NAME" in err


def test_dg_dev_serves_the_project_and_materializes_its_asset(
    project: Path, env: dict[str, str]
) -> None:
    """From one command to a materialized asset: `dg dev` in the scaffolded project serves the
    sample asset, a launch (what the UI's Materialize does) succeeds, and `dg dev` stops."""
    import signal
    import socket
    import time

    from dagster_graphql import DagsterGraphQLClient

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    log_path = project.parent / "dg_dev.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [str(BIN / "dg"), "dev", "--port", str(port),
             "--host", "127.0.0.1"],
            cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        try:
            deadline = time.monotonic() + 240
            nodes: list[dict[str, object]] = []
            while not nodes:
                with contextlib.suppress(Exception):
                    nodes = client._execute("query { assetNodes { assetKey { path } } }")[
                        "assetNodes"
                    ]
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("dg dev did not come up:\n" + log_path.read_text()[-4000:])
                time.sleep(0.5)
            assert {"clean_records"} <= {"/".join(n["assetKey"]["path"]) for n in nodes}  # type: ignore[index]
            run_id = client.submit_job_execution("shop_assets")
            status = None
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                status = client.get_run_status(run_id).value
                if status in ("SUCCESS", "FAILURE", "CANCELED"):
                    break
                time.sleep(0.5)
            assert status == "SUCCESS", log_path.read_text()[-4000:]
            # the asset's materialization is recorded, by that run
            asset = client._execute(
                'query { assetOrError(assetKey: {path: ["clean_records"]}) '
                "{ ... on Asset { assetMaterializations(limit: 1) { runId } } } }"
            )["assetOrError"]
            assert [m["runId"] for m in asset["assetMaterializations"]] == [run_id], asset
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
