"""The public surface is pinned (as dagster-dbt pins its own): the definition API at the top,
one error base, docstrings everywhere, and the old import paths still working with a
DeprecationWarning for one release."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
import warnings

import pytest

import pysetl_dagster
from pysetl_dagster import errors

PUBLIC = {
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
    "Profile",
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
}


def test_the_public_surface_is_pinned() -> None:
    assert set(pysetl_dagster.__all__) == PUBLIC
    assert len(pysetl_dagster.__all__) <= 30
    for name in pysetl_dagster.__all__:
        assert getattr(pysetl_dagster, name) is not None


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_every_public_name_has_a_google_style_docstring(name: str) -> None:
    value = getattr(pysetl_dagster, name)
    doc = inspect.getdoc(value)
    assert doc and len(doc.split()) >= 5, f"{name} needs a docstring that says what and why"
    if inspect.isfunction(value):
        params = [p for p in inspect.signature(value).parameters if p not in ("args", "kwargs")]
    else:
        params = []
    if len(params) > 1:
        assert "Args:" in doc, f"{name} takes {params}: document them under Args:"


def test_every_exception_of_the_package_derives_from_one_base() -> None:
    classes = []
    for module_name in _package_modules():
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__.startswith("pysetl_dagster")
            ):
                classes.append(value)
    assert classes
    for cls in classes:
        assert issubclass(cls, errors.PySetlError), f"{cls.__module__}.{cls.__name__}"
    assert issubclass(errors.PySetlDefinitionError, errors.PySetlError)


def test_old_import_paths_work_with_a_deprecation_warning() -> None:
    with pytest.warns(DeprecationWarning, match=r"pysetl_dagster\.translation\.graph"):
        from pysetl_dagster import FactoryNode
    from pysetl_dagster.translation.graph import FactoryNode as New

    assert FactoryNode is New
    sys.modules.pop("pysetl_dagster.io_managers", None)
    with pytest.warns(DeprecationWarning, match=r"pysetl_dagster\.storage\.io_manager"):
        legacy = importlib.import_module("pysetl_dagster.io_managers")
    from pysetl_dagster.storage.io_manager import SparkParquetIOManager

    assert legacy.SparkParquetIOManager is SparkParquetIOManager
    sys.modules.pop("pysetl_dagster.observability", None)
    with pytest.warns(DeprecationWarning):
        observability = importlib.import_module("pysetl_dagster.observability")
    from pysetl_dagster.spark.labels import run_tag
    from pysetl_dagster.spark.metrics import spark_metrics

    assert observability.run_tag is run_tag and observability.spark_metrics is spark_metrics
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        _ = observability.nothing_here
    # the definition API itself never warns
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        from pysetl_dagster import build_definitions, pysetl_pipeline  # noqa: F401


def test_importing_the_package_loads_no_optional_dependency() -> None:
    """pandera, polars, libcst, nbformat, rich and the migration tool load only when used."""
    code = (
        "import sys, pysetl_dagster\n"
        "from pysetl_dagster import build_definitions, pysetl_pipeline\n"
        "heavy = ['pandera', 'polars', 'libcst', 'nbformat', 'rich', 'prometheus_client',\n"
        "         'pysetl_dagster.migrate']\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"imported at definition load: {out}"


def _package_modules() -> list[str]:
    import pkgutil

    return [
        m.name
        for m in pkgutil.walk_packages(pysetl_dagster.__path__, "pysetl_dagster.")
        if ".migrate" not in m.name and m.name != "pysetl_dagster._legacy"
    ]
