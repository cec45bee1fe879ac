"""Pipeline composition: templates (one pipeline, many instances) and extension.

    regional = pysetl_template(build_regional_pipeline, name="sales")
    eu = regional.instance("eu", region="EU", factory_config={Numbers: {"n": 5}})
    us = regional.instance("us", region="US")
    defs = build_definitions(eu, us)

Each instance is `pysetl_pipeline(build(**params), name=f"{name}_{key}")` with the key as its
asset key prefix and asset group, so two instances never share a key, a job or a group; its
`factory_config` becomes the default run config of its jobs.

    extended = extend_pipeline(build_pipeline(), add=[Audit()], replace={Old: New})

returns a new PySetl `Pipeline` with the same Stages and external inputs, `replace`d Factories
swapped in place and `add`ed ones in a last Stage: the original is neither copied by hand nor
changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pysetl.workflow import Factory, Pipeline, Stage

from pysetl_dagster.errors import PySetlDefinitionError
from pysetl_dagster.translation.naming import snake_case
from pysetl_dagster.translation.specs import TranslatedPipeline

if TYPE_CHECKING:
    pass


FactoryLike = type[Factory[Any]] | Factory[Any]


def _instance(factory: FactoryLike) -> Factory[Any]:
    return factory() if isinstance(factory, type) else factory


def extend_pipeline(
    pipeline: Pipeline,
    *,
    add: Iterable[FactoryLike] = (),
    replace: Mapping[type[Factory[Any]], FactoryLike] | None = None,
) -> Pipeline:
    """A new Pipeline: `pipeline`'s Stages and inputs, with Factories replaced and added.

    Args:
        add: Factories (classes or instances) run in a new last Stage.
        replace: Factory class in `pipeline` -> the Factory (class or instance) taking its
            place, in the same Stage. Naming a class the pipeline does not have is an error.
    """
    replace = dict(replace or {})
    present = {type(f) for stage in pipeline.stages for f in stage.factories}
    missing = [old.__name__ for old in replace if old not in present]
    if missing:
        raise PySetlDefinitionError(
            f"extend_pipeline(replace=...) names {missing}, which the pipeline does not have "
            f"(it has {sorted(t.__name__ for t in present)}). Replace one of those, or `add` it."
        )
    extended = Pipeline()
    for deliverable in pipeline.dispatcher.get_registry().values():
        extended.set_input_from_deliverable(deliverable)
    for stage in pipeline.stages:
        new_stage = Stage()
        for factory in stage.factories:
            new_stage.add_factory(_instance(replace.get(type(factory), factory)))
        extended.add_stage(new_stage)
    added = [_instance(f) for f in add]
    if added:
        last = Stage()
        for factory in added:
            last.add_factory(factory)
        extended.add_stage(last)
    return extended


def factory_run_config(
    name: str,
    translated: TranslatedPipeline,
    factory_config: Mapping[type[Factory[Any]], Mapping[str, Any]],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run config of the asset job and of the Stage job setting each Factory's `Config`."""
    asset_ops: dict[str, Any] = {}
    stage_ops: dict[str, Any] = {}
    prefix = snake_case(name)
    for factory_type, values in factory_config.items():
        node = next((n for n in translated.graph.nodes if n.factory_type is factory_type), None)
        if node is None or translated.config_class(node) is None:
            raise PySetlDefinitionError(
                f"factory_config names Factory {factory_type.__name__}, which pipeline "
                f"{name!r} does not have or which declares no nested `Config` class."
            )
        op_name = translated.key_of(node).to_python_identifier()
        asset_ops[op_name] = {"config": dict(values)}
        if node.stage_index is not None:
            stage_op = stage_ops.setdefault(f"{prefix}__stage_{node.stage_index}", {"config": {}})
            stage_op["config"][op_name] = dict(values)
    return {"ops": asset_ops}, {"ops": stage_ops}
