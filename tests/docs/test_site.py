"""The documentation site builds with warnings as errors, and documents the public surface."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pysetl_dagster
from pysetl_dagster import testing
from tests.docs.snippets import ROOT


def test_site_builds_strict(tmp_path: Path) -> None:
    """`mkdocs build --strict`: a broken link or anchor, a page missing from the nav, a
    docstring mkdocstrings cannot parse, each fails the build (and this test, with mkdocs'
    own message)."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--quiet",
            "-d",
            str(tmp_path / "site"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    api = (tmp_path / "site" / "reference" / "api" / "index.html").read_text()
    # the reference is generated from the docstrings: build_definitions' first line is there
    first_line = pysetl_dagster.build_definitions.__doc__.splitlines()[0]
    assert "with default Spark and storage resources" in first_line
    assert "with default Spark and storage resources" in api
    assert (tmp_path / "site" / "validation" / "index.html").exists()


def test_api_reference_is_the_public_surface() -> None:
    """docs/reference/api.md has one `::: module.Name` entry per name of `_PUBLIC`, from the
    module `_PUBLIC` names, one per name of `pysetl_dagster.testing.__all__` and the pytest
    plugin's `spark` fixture, and nothing else: a new public name needs its reference entry."""
    text = (ROOT / "docs" / "reference" / "api.md").read_text()
    entries = re.findall(r"^::: (\S+)$", text, re.M)
    assert sorted(entries) == sorted(
        [f"{mod}.{name}" for name, mod in pysetl_dagster._PUBLIC.items()]
        + [f"pysetl_dagster.testing.{name}" for name in testing.__all__]
        + ["pysetl_dagster.testing.plugin.spark"]
    )
