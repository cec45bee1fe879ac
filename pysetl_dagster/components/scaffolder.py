"""What `dg scaffold defs pysetl_dagster.PySetlPipelineComponent NAME` writes.

Without parameters: a working sample beside the `defs.yaml` (a Factory with its Delivery and
pandera schema, the pipeline, a small CSV), so `dg list defs` shows an asset at once. With
`--pipeline my_project.pipeline:build_pipeline`: only the `defs.yaml`, pointing at your code.
"""

from __future__ import annotations

from pathlib import Path

from dagster.components import Scaffolder, ScaffoldRequest
from pydantic import BaseModel, Field

from pysetl_dagster.components import templates
from pysetl_dagster.translation.naming import snake_case


class PySetlPipelineScaffoldParams(BaseModel):
    """Parameters of `dg scaffold defs pysetl_dagster.PySetlPipelineComponent`.

    Attributes:
        pipeline: `module:attribute` of an existing Pipeline (or function returning one);
            when given, no sample is written.
        factory: the sample Factory's class name.
    """

    pipeline: str | None = Field(
        default=None,
        description="module:attribute of an existing PySetl Pipeline (or a function "
        "returning one); without it a sample Factory is written beside defs.yaml.",
    )
    factory: str = Field(default="CleanRecords", description="The sample Factory's class name.")


class PySetlPipelineScaffolder(Scaffolder[PySetlPipelineScaffoldParams]):
    """Writes the component's `defs.yaml`, with a runnable sample unless told otherwise."""

    @classmethod
    def get_scaffold_params(cls) -> type[PySetlPipelineScaffoldParams]:
        """The parameters `dg scaffold defs ... --pipeline/--factory` accepts."""
        return PySetlPipelineScaffoldParams

    def scaffold(self, request: ScaffoldRequest[PySetlPipelineScaffoldParams]) -> None:
        """Write `defs.yaml` (and the sample) into the requested folder."""
        params = request.params or PySetlPipelineScaffoldParams()
        folder = Path(request.target_path)
        folder.mkdir(parents=True, exist_ok=True)
        name = snake_case(folder.name) or "pipeline"
        reference = params.pipeline
        if reference is None:
            class_name = templates.factory_class_name(params.factory)
            write_sample(folder, name, class_name, factory_import=f".{snake_case(class_name)}")
            reference = ".pipeline:build_pipeline"
        (folder / "defs.yaml").write_text(templates.render_defs_yaml(reference, name))


def write_sample(folder: Path, pipeline_name: str, class_name: str, *, factory_import: str) -> None:
    """The sample Factory module, the pipeline module and the sample CSV, in `folder`.

    Args:
        folder: where `pipeline.py` goes (the Factory module too when `factory_import` is
            relative).
        pipeline_name: the pipeline's name.
        class_name: the sample Factory's class name.
        factory_import: the module the pipeline imports the Factory from (`.clean_records`:
            beside it, written here too).
    """
    if factory_import.startswith("."):
        (folder / f"{factory_import[1:]}.py").write_text(templates.render_factory(class_name))
    (folder / "pipeline.py").write_text(
        templates.render_pipeline(pipeline_name, factory_import, class_name)
    )
    data = folder / "data"
    data.mkdir(exist_ok=True)
    (data / "sample.csv").write_text(templates.SAMPLE_CSV)
