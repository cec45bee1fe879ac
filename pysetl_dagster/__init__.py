"""Run PySetl pipelines under Dagster: Factories as assets, Stages as ops, Pipelines as jobs.

The top level is the definition API: what a code location calls to turn PySetl pipelines into
Dagster definitions. The machinery lives in subpackages (`translation`, `defs`, `automation`,
`execution`, `storage`, `checks`, `spark`, `cli`, `migrate`; see docs/architecture.md) and is
importable from there.

Names are imported on first use (PEP 562), so `import pysetl_dagster` stays cheap and pandera,
the migration tool and friends load only when used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pysetl_dagster import _legacy

if TYPE_CHECKING:
    from pysetl_dagster.automation.conditions import (
        branch,
        stage_condition,
        variants,
        when_config,
        when_data,
    )
    from pysetl_dagster.checks.plan import Validation, pandera_schema_from_typedspark
    from pysetl_dagster.components.pipeline_component import PySetlPipelineComponent
    from pysetl_dagster.defs.build import build_definitions
    from pysetl_dagster.defs.pipeline import (
        PySetlPipelineDefinitions,
        pysetl_pipeline,
        pysetl_template,
    )
    from pysetl_dagster.defs.profiles import Profile, load_profile
    from pysetl_dagster.defs.templates import extend_pipeline
    from pysetl_dagster.errors import (
        PySetlDefinitionError,
        PySetlError,
        PySetlFactoryError,
        PySetlProfileError,
        PySetlSparkError,
        PySetlStorageError,
    )
    from pysetl_dagster.spark.resource import PySparkSessionResource
    from pysetl_dagster.storage.io_manager import SparkParquetIOManager
    from pysetl_dagster.storage.store import PySetlStorage
    from pysetl_dagster.translation.partitions import daily, static
    from pysetl_dagster.translation.translator import (
        PySetlExternalData,
        PySetlFactoryData,
        PySetlTranslator,
    )

__version__ = "0.1.0"

_PUBLIC: dict[str, str] = {
    "pysetl_pipeline": "pysetl_dagster.defs.pipeline",
    "PySetlPipelineDefinitions": "pysetl_dagster.defs.pipeline",
    "pysetl_template": "pysetl_dagster.defs.pipeline",
    "extend_pipeline": "pysetl_dagster.defs.templates",
    "build_definitions": "pysetl_dagster.defs.build",
    "PySetlTranslator": "pysetl_dagster.translation.translator",
    "PySetlFactoryData": "pysetl_dagster.translation.translator",
    "PySetlExternalData": "pysetl_dagster.translation.translator",
    "daily": "pysetl_dagster.translation.partitions",
    "static": "pysetl_dagster.translation.partitions",
    "Validation": "pysetl_dagster.checks.plan",
    "pandera_schema_from_typedspark": "pysetl_dagster.checks.plan",
    "when_config": "pysetl_dagster.automation.conditions",
    "when_data": "pysetl_dagster.automation.conditions",
    "stage_condition": "pysetl_dagster.automation.conditions",
    "branch": "pysetl_dagster.automation.conditions",
    "variants": "pysetl_dagster.automation.conditions",
    "PySparkSessionResource": "pysetl_dagster.spark.resource",
    "SparkParquetIOManager": "pysetl_dagster.storage.io_manager",
    "PySetlStorage": "pysetl_dagster.storage.store",
    "load_profile": "pysetl_dagster.defs.profiles",
    "Profile": "pysetl_dagster.defs.profiles",
    "PySetlPipelineComponent": "pysetl_dagster.components.pipeline_component",
    "PySetlError": "pysetl_dagster.errors",
    "PySetlDefinitionError": "pysetl_dagster.errors",
    "PySetlFactoryError": "pysetl_dagster.errors",
    "PySetlStorageError": "pysetl_dagster.errors",
    "PySetlProfileError": "pysetl_dagster.errors",
    "PySetlSparkError": "pysetl_dagster.errors",
}

__all__ = [
    "Profile",
    "PySetlDefinitionError",
    "PySetlError",
    "PySetlExternalData",
    "PySetlFactoryData",
    "PySetlFactoryError",
    "PySetlPipelineComponent",
    "PySetlPipelineDefinitions",
    "PySetlProfileError",
    "PySetlSparkError",
    "PySetlStorage",
    "PySetlStorageError",
    "PySetlTranslator",
    "PySparkSessionResource",
    "SparkParquetIOManager",
    "Validation",
    "branch",
    "build_definitions",
    "daily",
    "extend_pipeline",
    "load_profile",
    "pandera_schema_from_typedspark",
    "pysetl_pipeline",
    "pysetl_template",
    "stage_condition",
    "static",
    "variants",
    "when_config",
    "when_data",
]

_legacy.install()


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # later lookups skip this function
        return value
    if name in _legacy.MOVED_NAMES:
        return _legacy.moved_name(name)
    raise AttributeError(f"module 'pysetl_dagster' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
