"""Dagster components for PySetl pipelines: what `dg scaffold`, `dg list` and `dg check defs`
find through the `dagster_dg_cli.registry_modules` entry point (this module).

`PySetlPipelineComponent` configures one PySetl Pipeline in a `defs.yaml`; it is also
importable as `pysetl_dagster.PySetlPipelineComponent`, the type name `defs.yaml` uses.
It is imported on first use, so the CLI's scaffolding (which uses `templates`) does not load
`dagster.components`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pysetl_dagster.components.pipeline_component import PySetlPipelineComponent

__all__ = ["PySetlPipelineComponent"]


def __getattr__(name: str) -> Any:
    if name == "PySetlPipelineComponent":
        module = importlib.import_module("pysetl_dagster.components.pipeline_component")
        return module.PySetlPipelineComponent
    raise AttributeError(f"module 'pysetl_dagster.components' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
