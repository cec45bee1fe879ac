"""What a schedule or sensor needs to know of a pipeline, as a protocol.

`PySetlPipelineDefinitions` satisfies it; schedules and sensors depend on this small view
instead of the pipeline class, so the pipeline can offer `schedule()` and `on_new_files()`
without the two modules importing each other.
"""

from __future__ import annotations

from typing import Protocol

from dagster import JobDefinition
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

from pysetl_dagster.translation.graph import PipelineGraph
from pysetl_dagster.translation.specs import TranslatedPipeline


class AutomationTarget(Protocol):
    """A translated pipeline and its jobs: what schedules and sensors run."""

    @property
    def name(self) -> str: ...

    @property
    def translated(self) -> TranslatedPipeline: ...

    @property
    def graph(self) -> PipelineGraph: ...

    @property
    def asset_job(self) -> UnresolvedAssetJobDefinition: ...

    @property
    def stage_job(self) -> JobDefinition | None: ...
