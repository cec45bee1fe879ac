"""The import paths of the flat layout (before the subpackages), kept for one release.

`pysetl_dagster.io_managers`, `pysetl_dagster.pipelines`, ... still import, and names that left
the top level (`from pysetl_dagster import FactoryNode`) still resolve; each use says where
the name lives now with a `DeprecationWarning`. Remove this module in the next release.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from collections.abc import Sequence
from typing import Any

PACKAGE = "pysetl_dagster"

MOVED_NAMES: dict[str, str] = {
    "CACHE_TAG": "pysetl_dagster.storage.caching",
    "CacheDecision": "pysetl_dagster.storage.caching",
    "CacheKey": "pysetl_dagster.storage.caching",
    "CheckPlan": "pysetl_dagster.checks.plan",
    "Condition": "pysetl_dagster.automation.conditions",
    "Credentials": "pysetl_dagster.defs.profiles",
    "ExternalInput": "pysetl_dagster.translation.graph",
    "FORCE_TAG": "pysetl_dagster.storage.caching",
    "FactoryNode": "pysetl_dagster.translation.graph",
    "FactoryRun": "pysetl_dagster.execution.runner",
    "PipelineGraph": "pysetl_dagster.translation.graph",
    "PySetlTemplate": "pysetl_dagster.defs.pipeline",
    "ResolvedInput": "pysetl_dagster.translation.graph",
    "SKIPPED": "pysetl_dagster.automation.conditions",
    "TranslatedPipeline": "pysetl_dagster.translation.specs",
    "ValidationDepth": "pysetl_dagster.checks.plan",
    "asset_scope": "pysetl_dagster.spark.labels",
    "build_factory_asset": "pysetl_dagster.defs.assets",
    "build_pysetl_assets": "pysetl_dagster.defs.assets",
    "build_stage_job": "pysetl_dagster.defs.ops",
    "cancel_run_jobs": "pysetl_dagster.spark.labels",
    "default_storage_path": "pysetl_dagster.defs.build",
    "factory_code_version": "pysetl_dagster.translation.translator",
    "factory_step": "pysetl_dagster.execution.step",
    "latest_partition_schedule": "pysetl_dagster.automation.partition_schedules",
    "no_leaked_spark_labels": "pysetl_dagster.spark.labels",
    "run_factory": "pysetl_dagster.execution.runner",
    "spark_job_scope": "pysetl_dagster.spark.labels",
    "spark_jobs_submitted": "pysetl_dagster.spark.labels",
    "spark_metrics": "pysetl_dagster.spark.metrics",
    "spark_tags": "pysetl_dagster.spark.labels",
    "translate": "pysetl_dagster.translation.specs",
}
"""Names that were top-level before and now live only in their subpackage."""

MOVED_MODULES: dict[str, tuple[str, ...]] = {
    "assets": ("defs.assets",),
    "cache_cli": ("cli.cache",),
    "caching": ("storage.caching",),
    "conditions": ("automation.conditions",),
    "diagram": ("translation.diagram",),
    "fingerprints": ("storage.fingerprints",),
    "graph": ("translation.graph",),
    "io_managers": ("storage.io_manager", "storage.versions", "storage.filesystem"),
    "links": ("translation.links", "execution.inputs"),
    "logs": ("execution.logs",),
    "memory": ("spark.memory",),
    "naming": ("translation.naming",),
    "observability": (
        "spark.labels",
        "spark.cancel",
        "spark.metrics",
        "storage.loaded_inputs",
    ),
    "observation": ("automation.input_observation",),
    "ops": ("defs.ops",),
    "partitions": (
        "translation.partitions",
        "automation.partition_schedules",
        "defs.jobs",
    ),
    "pipelines": ("defs.pipeline", "defs.build"),
    "profiles": ("defs.profiles",),
    "prometheus": ("spark.prometheus",),
    "resources": ("spark.resource",),
    "runner": ("execution.runner",),
    "schedules": ("automation.schedules",),
    "schema_inference": ("checks.infer",),
    "sensors": ("automation.sensors",),
    "specs": ("translation.specs",),
    "step": ("execution.step",),
    "templates": ("defs.templates", "defs.pipeline"),
    "translator": ("translation.translator",),
}
"""Old module (`pysetl_dagster.<old>`) -> the modules its names moved to, searched in order."""


def moved_name(name: str) -> Any:
    """A name that left the top level, with a warning saying where to import it from."""
    module = MOVED_NAMES[name]
    warnings.warn(
        f"`from pysetl_dagster import {name}` is deprecated: import it from {module} "
        "(the top level keeps the definition API only).",
        DeprecationWarning,
        stacklevel=3,
    )
    return getattr(importlib.import_module(module), name)


class _MovedModule(types.ModuleType):
    """Stands in for an old module: each attribute is looked up in the modules it moved to."""

    def __init__(self, name: str, targets: Sequence[str]) -> None:
        super().__init__(name)
        self.__targets = tuple(f"{PACKAGE}.{t}" for t in targets)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        for target in self.__targets:
            module = importlib.import_module(target)
            if hasattr(module, attr):
                return getattr(module, attr)
        raise AttributeError(f"module {self.__name__!r} has no attribute {attr!r}")


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports `pysetl_dagster.<old module>` as a `_MovedModule`, with a DeprecationWarning."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        package, _, old = fullname.partition(".")
        if package != PACKAGE or old not in MOVED_MODULES:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        old = spec.name.partition(".")[2]
        targets = MOVED_MODULES[old]
        warnings.warn(
            f"{spec.name} is deprecated: import from "
            + " or ".join(f"{PACKAGE}.{t}" for t in targets)
            + " instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        return _MovedModule(spec.name, targets)

    def exec_module(self, module: types.ModuleType) -> None:
        return None


def install() -> None:
    """Put the finder on `sys.meta_path` once (after the path finders: real modules win)."""
    if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedModuleFinder())
