"""A PySetl Pipeline as a Dagster job whose ops are its Stages.

Stage *i* is one op: it receives the outputs of earlier Stages its Factories consume, runs its
Factories through `factory_step` (the path assets use), at the same time on threads of the run's
session (at most `max_concurrent_factories`; see `execution/concurrent.py`), and emits one
output per Factory.
Outputs are stored as the Factories' assets (see `ASSET_KEY_METADATA`), and a materialization
is recorded for each after it was written, so the asset graph shows Stage-job runs too.
"""

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from dagster import (
    DependencyDefinition,
    Field,
    GraphDefinition,
    In,
    JobDefinition,
    OpDefinition,
    OpExecutionContext,
    Out,
    PartitionsDefinition,
    in_process_executor,
    op,
)

from pysetl_dagster.defs.executor import SPARK_RESOURCE_KEY, factory_concurrency
from pysetl_dagster.metadata import MetadataKey
from pysetl_dagster.storage.io_manager import ASSET_KEY_METADATA
from pysetl_dagster.storage.loaded_inputs import inherit_inputs, loaded_inputs
from pysetl_dagster.translation.graph import FactoryNode
from pysetl_dagster.translation.naming import snake_case
from pysetl_dagster.translation.specs import TranslatedPipeline, input_name


def _stage_op(
    translated: TranslatedPipeline, stage_index: int, op_name: str, io_manager_key: str
) -> tuple[OpDefinition, dict[str, FactoryNode]]:
    graph = translated.graph
    nodes = [n for n in graph.nodes if n.stage_index == stage_index]
    upstream_of_input = {
        input_name(translated, upstream): upstream
        for node in nodes
        for upstream in graph.upstream_factories(node)
    }
    ins = {name: In() for name in upstream_of_input}
    outs = {
        translated.key_of(node).to_python_identifier(): Out(
            io_manager_key=io_manager_key,
            metadata={ASSET_KEY_METADATA: translated.key_of(node).to_user_string()},
            description=translated.factory_specs[node].description,
        )
        for node in nodes
    }
    config_fields = {}
    for node in nodes:
        config_class = translated.config_class(node)
        if config_class is not None:
            config_fields[translated.key_of(node).to_python_identifier()] = Field(
                config_class.to_config_schema().as_field().config_type,
                is_required=False,
                description=f"Config of Factory {node.name}",
            )

    upstream_assets = {
        node: {translated.key_of(u).to_user_string() for u in graph.upstream_factories(node)}
        for node in nodes
    }

    def run_stage(context: OpExecutionContext, **kwargs: Any) -> Iterator[Any]:
        # imported by the run that needs them, not by every definitions load
        from pysetl_dagster.execution.concurrent import ConcurrentWork, run_concurrently
        from pysetl_dagster.execution.step import factory_step

        step_key = context.get_step_execution_context().step.key
        loaded = loaded_inputs(step_key)  # read by this thread before the op ran
        works = []
        for node in nodes:
            config_class = translated.config_class(node)
            config = None
            if config_class is not None:
                raw = (context.op_config or {}).get(translated.key_of(node).to_python_identifier())
                config = config_class(**(raw or {}))
            own = {a: v for a, v in loaded.items() if a in upstream_assets[node]}
            works.append(
                ConcurrentWork(
                    asset=translated.key_of(node).to_user_string(),
                    events=partial(
                        factory_step,
                        context,
                        translated,
                        node,
                        kwargs,
                        config,
                        io_manager_key=io_manager_key,
                        checks_as_events=True,
                    ),
                    inherit=_inherit(step_key, own),
                )
            )
        resource = getattr(context.resources, SPARK_RESOURCE_KEY)
        yield from run_concurrently(
            works,
            max_concurrent=factory_concurrency(context),
            spark=resource.spark_session,
            run_id=context.run.run_id,
        )

    stage_op = op(
        name=op_name,
        ins=ins,
        out=outs,
        config_schema=config_fields or None,
        required_resource_keys={SPARK_RESOURCE_KEY, io_manager_key},
        description=f"Stage {stage_index} of pipeline {graph.name}: "
        + ", ".join(n.name for n in nodes),
        tags={MetadataKey.STAGE: str(stage_index)},
    )(run_stage)
    return stage_op, upstream_of_input


def _inherit(step_key: str, inputs: dict[str, str]) -> Callable[[], None]:
    return partial(inherit_inputs, step_key, inputs)


def build_stage_job(
    translated: TranslatedPipeline,
    *,
    name: str,
    io_manager_key: str = "io_manager",
    description: str | None = None,
    metadata: dict[str, Any] | None = None,
    partitions_def: PartitionsDefinition | None = None,
    config: dict[str, Any] | None = None,
) -> JobDefinition:
    """The job of the pipeline's Stages, run in one process (one SparkSession); a Stage's
    Factories run at the same time (`max_concurrent_factories`)."""
    graph = translated.graph
    prefix = snake_case(graph.name)
    op_defs: list[OpDefinition] = []
    dependencies: dict[str, dict[str, DependencyDefinition]] = {}
    op_of_node: dict[FactoryNode, str] = {}
    for stage_index in graph.stage_indexes():
        op_name = f"{prefix}__stage_{stage_index}"
        stage_op, upstream_of_input = _stage_op(translated, stage_index, op_name, io_manager_key)
        op_defs.append(stage_op)
        dependencies[op_name] = {
            in_name: DependencyDefinition(
                op_of_node[upstream], translated.key_of(upstream).to_python_identifier()
            )
            for in_name, upstream in upstream_of_input.items()
        }
        for node in graph.nodes:
            if node.stage_index == stage_index:
                op_of_node[node] = op_name
    return GraphDefinition(
        name=name, node_defs=op_defs, dependencies=dependencies, description=description
    ).to_job(
        # Stages run one after another, as in PySetl; a Stage's Factories run at once
        executor_def=in_process_executor,
        metadata=dict(metadata or {}),
        partitions_def=partitions_def,
        config=config,
    )
