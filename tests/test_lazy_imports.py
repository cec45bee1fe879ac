"""What importing and using pysetl-dagster loads: libraries only some users need stay unloaded.

Each test runs a fresh interpreter (this one has imported everything already) and lists which
optional libraries ended up in its `sys.modules` (issue 15, "Load time").
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.conftest import ROOT

#: Needed only by validation (pandera, polars, pandas), the migration tool (libcst, nbformat),
#: the CLI's tables (rich) or Prometheus metrics (prometheus_client).
OPTIONAL = (
    "pandera",
    "dagster_pandera",
    "polars",
    "pandas",
    "libcst",
    "nbformat",
    "rich",
    "prometheus_client",
    "pysetl_dagster.migrate.engine",
)


def _loaded_optional(code: str, watched: tuple[str, ...] = OPTIONAL) -> list[str]:
    """Run `code` in a fresh interpreter; which of the `watched` modules (by default the
    optional libraries) it loaded."""
    probe = textwrap.dedent(code) + textwrap.dedent(
        f"""
        import json, sys
        print(json.dumps([m for m in {watched!r} if m in sys.modules]))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return loaded


def test_loading_definitions_loads_no_optional_library() -> None:
    loaded = _loaded_optional(
        """
        import dagster as dg
        from pysetl.workflow import Factory, Pipeline, Stage

        from pysetl_dagster import build_definitions, pysetl_pipeline


        class Numbers(Factory[list]):
            def read(self): return self
            def process(self): return self
            def write(self): return self
            def get(self): return [1, 2, 3]


        stage = Stage()
        stage.add_factory(Numbers())
        pipeline = Pipeline()
        pipeline.add_stage(stage)
        defs = build_definitions(pysetl_pipeline(pipeline, name="numbers"), storage_path="/tmp/x")
        dg.Definitions.validate_loadable(defs)
        defs.resolve_all_job_defs()
        """
    )
    assert loaded == []


def test_cli_commands_other_than_migrate_load_neither_the_migration_tool_nor_rich() -> None:
    loaded = _loaded_optional(
        """
        import contextlib, io
        from pysetl_dagster.cli.main import main

        with contextlib.redirect_stdout(io.StringIO()):
            for command in (["describe", "--help"], ["cache", "list", "--help"]):
                try:
                    main(command)
                except SystemExit:
                    pass
        """
    )
    assert loaded == []


def test_migrate_loads_its_engine() -> None:
    """The counterpart of the test above: the probe does see a lazily imported library."""
    loaded = _loaded_optional(
        """
        import argparse, contextlib, io
        from pysetl_dagster.migrate.cli import run

        with contextlib.redirect_stdout(io.StringIO()):
            run(argparse.Namespace(restore=None, source=None, out=None))
        """
    )
    assert {"libcst", "rich", "pysetl_dagster.migrate.engine"} <= set(loaded)


def test_prometheus_sensors_are_defined_without_prometheus_client() -> None:
    loaded = _loaded_optional(
        """
        from pysetl_dagster.spark.prometheus import prometheus_sensors

        assert len(prometheus_sensors("localhost:9091")) == 2
        """
    )
    assert "prometheus_client" not in loaded


#: Modules the definition API does not need until they are used: profiles (pydantic models,
#: only with `profile=`), the branching sensor, and the step machinery (only a run executes
#: steps; a code server that only loads definitions never does).
ON_USE = (
    "pysetl_dagster.defs.profiles",
    "pysetl_dagster.automation.branching",
    "pysetl_dagster.execution.step",
)


def _loaded_on_use(code: str) -> list[str]:
    return _loaded_optional(code, ON_USE)


def test_definition_api_loads_profiles_branching_and_the_step_only_when_used() -> None:
    assert _loaded_on_use("from pysetl_dagster import build_definitions, pysetl_pipeline") == []
    # the probe does see them once used (the step's lazy import runs in every
    # materialization of tests/execution)
    assert _loaded_on_use("from pysetl_dagster import load_profile") == [ON_USE[0]]
