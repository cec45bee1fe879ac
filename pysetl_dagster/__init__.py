"""Run PySetl pipelines under Dagster: Factories as assets, Stages as ops, Pipelines as jobs."""

from .assets import build_factory_asset, build_pysetl_assets
from .caching import CACHE_TAG, FORCE_TAG, CacheDecision, CacheKey
from .checks import CheckPlan, Validation, ValidationDepth, pandera_schema_from_typedspark
from .conditions import (
    SKIPPED,
    Condition,
    branch,
    stage_condition,
    variants,
    when_config,
    when_data,
)
from .errors import PySetlDefinitionError, PySetlFactoryError
from .graph import ExternalInput, FactoryNode, PipelineGraph, ResolvedInput
from .io_managers import PySetlStorageError, SparkParquetIOManager
from .observability import (
    asset_scope,
    cancel_run_jobs,
    no_leaked_spark_labels,
    spark_job_scope,
    spark_jobs_submitted,
    spark_metrics,
    spark_tags,
)
from .ops import build_stage_job
from .partitions import daily, latest_partition_schedule, static
from .pipelines import (
    PySetlPipelineDefinitions,
    build_definitions,
    default_storage_path,
    pysetl_pipeline,
)
from .profiles import Credentials, Profile, PySetlProfileError, load_profile
from .resources import PySetlSparkError, PySparkSessionResource
from .runner import FactoryRun, run_factory
from .specs import TranslatedPipeline, translate
from .step import factory_step
from .templates import PySetlTemplate, extend_pipeline, pysetl_template
from .translator import (
    PySetlExternalData,
    PySetlFactoryData,
    PySetlTranslator,
    factory_code_version,
)

__version__ = "0.1.0"

__all__ = [
    "CACHE_TAG",
    "FORCE_TAG",
    "SKIPPED",
    "CacheDecision",
    "CacheKey",
    "CheckPlan",
    "Condition",
    "Credentials",
    "ExternalInput",
    "FactoryNode",
    "FactoryRun",
    "PipelineGraph",
    "Profile",
    "PySetlDefinitionError",
    "PySetlExternalData",
    "PySetlFactoryData",
    "PySetlFactoryError",
    "PySetlPipelineDefinitions",
    "PySetlProfileError",
    "PySetlSparkError",
    "PySetlStorageError",
    "PySetlTemplate",
    "PySetlTranslator",
    "PySparkSessionResource",
    "ResolvedInput",
    "SparkParquetIOManager",
    "TranslatedPipeline",
    "Validation",
    "ValidationDepth",
    "asset_scope",
    "branch",
    "build_definitions",
    "build_factory_asset",
    "build_pysetl_assets",
    "build_stage_job",
    "cancel_run_jobs",
    "daily",
    "default_storage_path",
    "extend_pipeline",
    "factory_code_version",
    "factory_step",
    "latest_partition_schedule",
    "load_profile",
    "no_leaked_spark_labels",
    "pandera_schema_from_typedspark",
    "pysetl_pipeline",
    "pysetl_template",
    "run_factory",
    "spark_job_scope",
    "spark_jobs_submitted",
    "spark_metrics",
    "spark_tags",
    "stage_condition",
    "static",
    "translate",
    "variants",
    "when_config",
    "when_data",
]
