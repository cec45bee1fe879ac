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
        factory: the sample Factory's class name (default: `<Folder>Records`).
    """

    pipeline: str | None = Field(
        default=None,
        description="module:attribute of an existing PySetl Pipeline (or a function "
        "returning one); without it a sample Factory is written beside defs.yaml.",
    )
    factory: str | None = Field(
        default=None,
        description="The sample Factory's class name (default: from the folder's name, "
        "e.g. my_pipeline -> MyPipelineRecords, so samples in one project never collide).",
    )


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
            class_name = templates.factory_class_name(params.factory or f"{name}_records")
            templates.write_sample(
                folder, name, class_name, factory_import=f".{snake_case(class_name)}"
            )
            reference = ".pipeline:build_pipeline"
        (folder / "defs.yaml").write_text(
            templates.render_defs_yaml(reference, name, sample=params.pipeline is None)
        )
