"""The files `dg scaffold defs pysetl_dagster.PySetlPipelineComponent` and `pysetl-dagster
init` / `new factory` write: one sample Factory with its Delivery, typedspark and pandera
schemas, the pipeline wiring it, the component's `defs.yaml`, a test and a README.

Rendered with `string.Template` (`$name`): the files are Python and YAML full of braces.
Nothing here names a machine path or an environment: data paths are relative to the module
that reads them, storage and profile come from the environment at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from string import Template

from pysetl_dagster.translation.naming import snake_case

FACTORY_MODULE = Template('''\
"""$class_name: $summary

The Factory reads its input from a Delivery (`source`), transforms it in `process()` and
returns it from `get()`; pysetl-dagster stores the output and runs the pandera checks below as
asset checks on every materialization.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import pandera.pyspark as pa
import pyspark.sql.types as T
from pysetl.workflow import Delivery, Factory
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from typedspark import Column, DataSet, Schema

from pysetl_dagster import Validation


@dataclass(frozen=True)
class ${class_name}Source:
    """Where the input is: a CSV file (or folder of CSV files) with a header row."""

    path: str


class ${class_name}Row(Schema):
    """One output row (typedspark): the asset's column schema in the Dagster UI."""

    id: Column[T.LongType]
    name: Column[T.StringType]
    amount: Column[T.DoubleType]


class ${class_name}Model(pa.DataFrameModel):
    """The output's rules: each becomes an asset check (`id__gt`, `amount__ge`, ...)."""

    id: T.LongType() = pa.Field(gt=0)  # type: ignore[valid-type]
    name: T.StringType() = pa.Field(str_length={"min_value": 1})  # type: ignore[valid-type]
    amount: T.DoubleType() = pa.Field(ge=0)  # type: ignore[valid-type]

    class Config:
        unique = ["id"]


class $class_name(Factory[DataSet[${class_name}Row]]):
    """$summary"""

    validation = Validation(${class_name}Model, blocking=True)
    source = Delivery[${class_name}Source]()

    def read(self) -> Self:
        spark = SparkSession.getActiveSession() or SparkSession.builder.getOrCreate()
        self.raw: DataFrame = (
            spark.read.schema(${class_name}Row.get_structtype())
            .option("header", True)
            .csv(self.source.get().path)
        )
        return self

    def process(self) -> Self:
        self.output = DataSet[${class_name}Row](
            self.raw.where(F.col("id").isNotNull() & (F.col("amount") >= 0)).withColumn(
                "name", F.trim(F.col("name"))
            )
        )
        return self

    def write(self) -> Self:
        return self

    def get(self) -> DataSet[${class_name}Row]:
        return self.output
''')

PIPELINE_MODULE = Template('''\
"""The `$pipeline_name` PySetl pipeline: its inputs and Stages.

`defs.yaml` points the PySetlPipelineComponent at `build_pipeline`; its `params` become this
function's arguments.
"""

from __future__ import annotations

from pathlib import Path

from pysetl.workflow import Deliverable, Pipeline, Stage

from $factory_import import $class_name, ${class_name}Source

SAMPLE_DATA = Path(__file__).resolve().parent / "data" / "$data_file"


def build_pipeline(data_path: str | None = None) -> Pipeline:
    """The pipeline reading `data_path` (default: the sample CSV beside this module)."""
    pipeline = Pipeline()
    source = ${class_name}Source(data_path or str(SAMPLE_DATA))
    pipeline.set_input_from_deliverable(Deliverable[${class_name}Source](source))
    return pipeline.add_stage(Stage().add_factory($class_name()))
''')

SAMPLE_CSV = "id,name,amount\n1, Ada ,12.5\n2,Grace,7.0\n3,Edsger,-1.0\n,nobody,3.0\n"

DEFS_YAML = Template("""\
type: pysetl_dagster.PySetlPipelineComponent

attributes:
  # module:attribute of a PySetl Pipeline, or of a function returning one
  # (a leading dot: a module beside this file)
  pipeline: $pipeline_ref
$params  name: $pipeline_name
  schedules:
    - cron: "0 2 * * *"
      name: ${pipeline_name}_daily
  translation:
$kinds    tags:
      pipeline: "{{ pipeline }}"
""")

FACTORY_TEST = Template('''\
"""$class_name on small in-memory inputs: fast, a real local SparkSession."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession

from pysetl_dagster.testing import assert_frame_equal, run_factory
from $factory_import import $class_name, ${class_name}Row, ${class_name}Source


def test_${snake}_keeps_valid_rows(spark: SparkSession, tmp_path: Path) -> None:
    csv = tmp_path / "input.csv"
    csv.write_text("id,name,amount\\n1, Ada ,12.5\\n2,Grace,-1.0\\n,nobody,3.0\\n")

    output = run_factory($class_name, {"source": ${class_name}Source(str(csv))})

    expected = spark.createDataFrame([(1, "Ada", 12.5)], ${class_name}Row.get_structtype())
    assert_frame_equal(output, expected)
''')

PIPELINE_TEST = Template('''\
"""The whole pipeline, materialized by Dagster into a temporary instance and storage."""

from __future__ import annotations

from pyspark.sql import SparkSession

from pysetl_dagster import pysetl_pipeline
from pysetl_dagster.testing import materialize_pipeline
from $pipeline_import import build_pipeline


def test_the_pipeline_materializes_and_passes_its_checks(spark: SparkSession) -> None:
    pipeline = pysetl_pipeline(build_pipeline(), name="$pipeline_name")
    with materialize_pipeline(pipeline) as run:
        assert run.result.success
        assert all(check.passed for check in run.result.get_asset_check_evaluations())
        assert run.output("$snake").count() == 2
''')

CONFTEST = '''\
"""One local SparkSession for the whole test session (the `spark` fixture)."""

pytest_plugins = ["pysetl_dagster.testing.plugin"]
'''

PYPROJECT = Template("""\
[project]
name = "$project"
version = "0.1.0"
description = "PySetl pipelines under Dagster"
requires-python = ">=3.11"
dependencies = ["pysetl-dagster"]

[project.optional-dependencies]
dev = ["dagster-webserver", "dagster-dg-cli", "pytest"]

[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[tool.hatch.build.targets.wheel]
packages = ["src/$package"]

[tool.dg]
directory_type = "project"

[tool.dg.project]
root_module = "$package"

[tool.pytest.ini_options]
testpaths = ["tests"]
pythonpath = ["src"]
""")

DEFINITIONS_MODULE = Template('''\
"""The code location: every component under `defs/` (`dg list defs`, `dg dev`)."""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    """The definitions of every `defs.yaml` under `$package/defs/`."""
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
''')

README = Template("""\
# $project

PySetl pipelines run by Dagster, made with `pysetl-dagster init`.

```bash
pip install -e '.[dev]'      # pysetl-dagster, Dagster's UI and dg; Java 17 for Spark
pytest                       # the sample Factory and the pipeline, on a local Spark
dg list defs                 # what Dagster sees: assets, checks, jobs, schedules
dg dev                       # the UI: http://127.0.0.1:3000, then Materialize all
```

- `src/$package/factories/$snake.py`: the sample Factory `$class_name`, its Delivery
  (`source`), its typedspark schema and its pandera model (asset checks).
- `src/$package/pipeline.py`: the PySetl Pipeline (inputs and Stages).
- `src/$package/defs/$pipeline_name/defs.yaml`: the PySetlPipelineComponent: which pipeline,
  its name, schedules, sensors and asset attributes (`translation`).
- `tests/`: `pysetl_dagster.testing` runs one Factory on given inputs, or materializes the
  pipeline into a temporary instance and storage.

Add a Factory with `pysetl-dagster new factory MyFactory`, then add it to a Stage in
`pipeline.py`. Outputs are stored under `$$PYSETL_DAGSTER_STORAGE`, else
`$$DAGSTER_HOME/pysetl_storage`; `${env_prefix}_DATA` points the pipeline at other data.
""")


@dataclass(frozen=True)
class FactoryNames:
    """The names one Factory scaffold uses, derived from its class name."""

    class_name: str

    @property
    def snake(self) -> str:
        """The module, test and asset name (`CleanOrders` -> `clean_orders`)."""
        return snake_case(self.class_name)


def factory_class_name(name: str) -> str:
    """`clean_orders`, `clean-orders` or `CleanOrders` -> `CleanOrders`."""
    parts = [p for p in snake_case(name.replace("-", "_")).split("_") if p]
    class_name = "".join(p[:1].upper() + p[1:] for p in parts)
    if not class_name.isidentifier():
        raise ValueError(f"{name!r} does not make a Python class name (letters, digits, `_`).")
    return class_name


def render_factory(class_name: str, summary: str | None = None) -> str:
    """The module of one Factory: its Delivery, typedspark schema and pandera model."""
    return FACTORY_MODULE.substitute(
        class_name=class_name,
        summary=summary or "Rows with an id and a non-negative amount, names trimmed.",
    )


def render_pipeline(pipeline_name: str, factory_import: str, class_name: str) -> str:
    """The pipeline module wiring the sample Factory to its sample CSV input."""
    return PIPELINE_MODULE.substitute(
        pipeline_name=pipeline_name,
        factory_import=factory_import,
        class_name=class_name,
        data_file="sample.csv",
    )


# The sample's `build_pipeline(data_path=None)` takes its data from the environment; a
# pipeline of the user's own (`--pipeline`) gets the same line as a comment, since its
# parameters are unknown here (a `params` key it does not accept would fail the load).
SAMPLE_PARAMS = Template("""\
  params:
    data_path: "{{ env.${env_prefix}_DATA }}"   # unset: the sample CSV
""")
OWN_PARAMS = Template("""\
  # params:                       # keyword arguments, when `pipeline` is a function
  #   data_dir: "{{ env.${env_prefix}_DATA_DIR }}"
""")


def render_defs_yaml(pipeline_ref: str, pipeline_name: str, *, sample: bool = True) -> str:
    """The component's `defs.yaml` for a pipeline at `pipeline_ref` (`module:attribute`).

    Args:
        pipeline_ref: the `pipeline:` reference.
        pipeline_name: the pipeline's name (asset group, jobs, schedule).
        sample: whether `pipeline_ref` is the scaffolded sample (its `data_path` parameter is
            set from the environment) or the user's own code (parameters left as a comment).
    """
    env_prefix = pipeline_name.upper()
    params = (SAMPLE_PARAMS if sample else OWN_PARAMS).substitute(env_prefix=env_prefix)
    return DEFS_YAML.substitute(
        pipeline_ref=pipeline_ref,
        pipeline_name=pipeline_name,
        params=params,
        kinds="    kinds: [csv]   # the sample reads a CSV file\n" if sample else "",
    )


def render_factory_test(factory_import: str, class_name: str) -> str:
    """A test running the Factory on a small input with `pysetl_dagster.testing`."""
    return FACTORY_TEST.substitute(
        factory_import=factory_import, class_name=class_name, snake=snake_case(class_name)
    )


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
        (folder / f"{factory_import[1:]}.py").write_text(render_factory(class_name))
    (folder / "pipeline.py").write_text(render_pipeline(pipeline_name, factory_import, class_name))
    data = folder / "data"
    data.mkdir(exist_ok=True)
    (data / "sample.csv").write_text(SAMPLE_CSV)
