"""Dagster components for PySetl pipelines: what `dg scaffold`, `dg list` and `dg check defs`
find through the `dagster_dg_cli.registry_modules` entry point (this module).

`PySetlPipelineComponent` configures one PySetl Pipeline in a `defs.yaml`; it is also
importable as `pysetl_dagster.PySetlPipelineComponent`, the type name `defs.yaml` uses.
"""

from __future__ import annotations

from pysetl_dagster.components.pipeline_component import PySetlPipelineComponent

__all__ = ["PySetlPipelineComponent"]
