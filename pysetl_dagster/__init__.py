"""Run PySetl pipelines under Dagster: Factories as assets, Stages as ops, Pipelines as jobs."""

from .assets import TranslatedPipeline, build_factory_asset, build_pysetl_assets, translate
from .errors import PySetlDefinitionError, PySetlFactoryError
from .graph import ExternalInput, FactoryNode, PipelineGraph, ResolvedInput
from .io_managers import PySetlStorageError, SparkParquetIOManager
from .observability import (
    asset_scope,
    cancel_run_jobs,
    no_leaked_spark_labels,
    spark_job_scope,
    spark_metrics,
    spark_tags,
)
from .ops import build_stage_job
from .pipelines import (
    PySetlPipelineDefinitions,
    build_definitions,
    default_storage_path,
    pysetl_pipeline,
)
from .resources import PySetlSparkError, PySparkSessionResource
from .runner import FactoryRun, run_factory
from .translator import (
    PySetlExternalData,
    PySetlFactoryData,
    PySetlTranslator,
    factory_code_version,
)

__version__ = "0.1.0"

__all__ = [
    "ExternalInput",
    "FactoryNode",
    "FactoryRun",
    "PipelineGraph",
    "PySetlDefinitionError",
    "PySetlExternalData",
    "PySetlFactoryData",
    "PySetlFactoryError",
    "PySetlPipelineDefinitions",
    "PySetlSparkError",
    "PySetlStorageError",
    "PySetlTranslator",
    "PySparkSessionResource",
    "ResolvedInput",
    "SparkParquetIOManager",
    "TranslatedPipeline",
    "asset_scope",
    "build_definitions",
    "build_factory_asset",
    "build_pysetl_assets",
    "build_stage_job",
    "cancel_run_jobs",
    "default_storage_path",
    "factory_code_version",
    "no_leaked_spark_labels",
    "pysetl_pipeline",
    "run_factory",
    "spark_job_scope",
    "spark_metrics",
    "spark_tags",
    "translate",
]
