"""The state of one Factory step, which every phase of the step reads and fills in.

One object instead of 5-9 positional parameters threaded through helpers: the step's phases
(`decide`, `compute`, `store_and_audit`, `publish_or_reject`, `report`; see `step.py`) are
functions of it. It lives for one step and is dropped with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dagster import (
    AssetCheckKey,
    AssetExecutionContext,
    AssetKey,
    OpExecutionContext,
)

from pysetl_dagster.checks.plan import CheckOutcome, CheckPlan, ValidationDepth
from pysetl_dagster.execution.runner import FactoryRun
from pysetl_dagster.spark.memory import DriverMemory
from pysetl_dagster.storage.caching import CacheDecision
from pysetl_dagster.storage.io_manager import SparkParquetIOManager, StoredVersion
from pysetl_dagster.translation.graph import FactoryNode
from pysetl_dagster.translation.specs import TranslatedPipeline

SPARK_RESOURCE_KEY = "pyspark"
"""The resource key of the SparkSession resource every Factory step requires."""

StepContext = AssetExecutionContext | OpExecutionContext


@dataclass
class StepState:
    """Everything one Factory step knows, from its inputs to what it reports.

    Set at the start: the Dagster context, the pipeline's translation, the Factory and what
    the step was given. Filled in by the phases: the decision (skip, branch, cache), the
    Factory's run, the stored version, the check outcomes and the metadata to report.
    """

    context: StepContext
    translated: TranslatedPipeline
    node: FactoryNode
    loaded: Mapping[str, Any]
    """Dagster input name -> the upstream value the IO manager loaded."""
    config: Any
    io_manager_key: str
    checks_as_events: bool
    """A Stage op logs check results as events (it cannot yield `AssetCheckResult`)."""
    key: AssetKey
    partition: str | None
    io_manager: Any
    """The resource under `io_manager_key`: any IO manager."""
    storage: SparkParquetIOManager | None
    """The same resource when it is pysetl-dagster's versioned storage (resolved once): only
    then are outputs written, audited and published by the step, and cached."""
    plan: CheckPlan | None
    values: dict[str, Any] = field(default_factory=dict)
    """Delivery attribute -> value handed to the Factory (upstream outputs, external inputs)."""
    spark_resource: Any = None
    run_node: FactoryNode | None = None
    """What actually runs: the Factory, or the alternative its branch chose."""
    branch_taken: str | None = None
    skip_reason: str | None = None
    cache: CacheDecision | None = None
    run: FactoryRun | None = None
    driver: DriverMemory | None = None
    """The driver's memory peak, measured from the start of the Factory's run."""
    stored: StoredVersion | None = None
    outcomes: list[CheckOutcome] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    value: Any = None
    """What the step hands to Dagster as its output (a published `StoredVersion` or a value)."""

    @classmethod
    def start(
        cls,
        context: StepContext,
        translated: TranslatedPipeline,
        node: FactoryNode,
        loaded: Mapping[str, Any],
        config: Any,
        *,
        io_manager_key: str,
        check_keys: set[AssetCheckKey] | None,
        checks_as_events: bool,
    ) -> StepState:
        key = translated.key_of(node)
        io_manager = getattr(context.resources, io_manager_key, None)
        storage = io_manager if isinstance(io_manager, SparkParquetIOManager) else None
        # An unpartitioned Factory in a partitioned run (one job holds both) keeps one output.
        partitioned = translated.factory_specs[node].partitions_def is not None
        partition = context.partition_key if partitioned and context.has_partition_key else None
        return cls(
            context=context,
            translated=translated,
            node=node,
            loaded=loaded,
            config=config,
            io_manager_key=io_manager_key,
            checks_as_events=checks_as_events,
            key=key,
            partition=partition,
            io_manager=io_manager,
            storage=storage,
            plan=_effective_plan(translated.check_plans.get(node), storage, check_keys),
        )

    @property
    def asset(self) -> str:
        return self.key.to_user_string()

    @property
    def run_id(self) -> str:
        return self.context.run.run_id

    @property
    def output_name(self) -> str:
        return self.key.to_python_identifier()

    @property
    def spark(self) -> Any:
        """The run's SparkSession (started by the resource with the run)."""
        if self.spark_resource is None:
            self.spark_resource = getattr(self.context.resources, SPARK_RESOURCE_KEY)
        return self.spark_resource.spark_session

    @property
    def run_output(self) -> Any:
        """What the Factory's `get()` returned (None before it ran)."""
        return self.run.output if self.run is not None else None

    @property
    def log_format(self) -> str:
        self.spark  # noqa: B018 - resolves the resource
        return str(getattr(self.spark_resource, "log_format", "text"))


def _effective_plan(
    plan: CheckPlan | None,
    storage: SparkParquetIOManager | None,
    check_keys: set[AssetCheckKey] | None,
) -> CheckPlan | None:
    """The selected checks at the Factory's depth (else the storage's default depth)."""
    if plan is None:
        return None
    default = (
        ValidationDepth(storage.validation_depth)
        if storage is not None
        else ValidationDepth.SCHEMA_AND_DATA
    )
    depth = ValidationDepth(plan.validation.depth or default)
    return plan.selected(check_keys).with_depth(depth)
