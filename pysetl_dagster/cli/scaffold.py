"""`pysetl-dagster init NAME` and `pysetl-dagster new factory NAME`: a project in one command.

    pysetl-dagster init my_project          # ./my_project: runnable, tested, dg-ready
    cd my_project && pysetl-dagster new factory EnrichOrders

`init` writes a `dg` project (the layout `dg` and `create-dagster` use: `src/<package>/`,
`defs/` of components, `[tool.dg]` in pyproject): one sample Factory with its Delivery,
typedspark schema and pandera model, the pipeline wiring it to a sample CSV, the
PySetlPipelineComponent's `defs.yaml`, tests using `pysetl_dagster.testing`, a README.
Nothing in it names a machine path or an environment. `new factory` adds a typed Factory
skeleton and its test to the project found from the current folder.
"""

from __future__ import annotations

import argparse
import keyword
import sys
import tomllib
from pathlib import Path
from typing import Any

from pysetl_dagster.components import templates
from pysetl_dagster.errors import PySetlError
from pysetl_dagster.translation.naming import snake_case

SAMPLE_FACTORY = "CleanRecords"


class ScaffoldError(PySetlError):
    """A scaffold that cannot be written; the message says why and what to do."""


def add_parser(commands: Any) -> None:
    """Register `init` and `new factory` on the `pysetl-dagster` command line."""
    init_cmd = commands.add_parser("init", help="create a runnable pysetl-dagster project")
    init_cmd.add_argument("name", help="project folder and package name (e.g. my_project)")
    init_cmd.add_argument(
        "--dir", default=".", help="folder to create the project in (default: the current one)"
    )
    new_cmd = commands.add_parser("new", help="add code to the project of the current folder")
    new_sub = new_cmd.add_subparsers(dest="new_command", required=True)
    factory_cmd = new_sub.add_parser("factory", help="a typed Factory skeleton and its test")
    factory_cmd.add_argument("name", help="class name (EnrichOrders) or snake_case name")
    factory_cmd.add_argument(
        "--project", default=".", help="the project folder (default: the current one)"
    )


def run(args: argparse.Namespace) -> int:
    """Run `init` or `new factory`; a problem is one line on stderr and exit code 1."""
    try:
        if args.command == "init":
            root = init_project(args.name, Path(args.dir))
            print(f"created {root}")
            print(f"  cd {root.name} && pytest && dg list defs   # then: dg dev")
            return 0
        created = new_factory(args.name, Path(args.project))
        for path in created:
            print(f"created {path}")
        print("add it to a Stage in pipeline.py: Stage().add_factory(...)")
        return 0
    except ScaffoldError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def package_name(name: str) -> str:
    """The Python package of project `name` (`my-project` -> `my_project`)."""
    package = snake_case(name.replace("-", "_").replace(".", "_"))
    if not package.isidentifier() or keyword.iskeyword(package):
        raise ScaffoldError(
            f"{name!r} does not make a Python package name: use letters, digits and `_`, "
            "starting with a letter (e.g. my_project)."
        )
    return package


def init_project(name: str, parent: Path) -> Path:
    """Create project `name` in `parent` and return its folder.

    Args:
        name: the project (and folder) name; its package is its snake_case form.
        parent: the folder to create it in.

    Raises:
        ScaffoldError: the name is not a package name, or the folder exists and is not empty.
    """
    package = package_name(name)
    root = parent / name
    if root.exists() and any(root.iterdir()):
        raise ScaffoldError(f"{root} exists and is not empty: choose another name or --dir.")
    src = root / "src" / package
    pipeline_name = package
    names = templates.FactoryNames(SAMPLE_FACTORY)
    factory_import = f"{package}.factories.{names.snake}"
    (src / "factories").mkdir(parents=True)
    defs = src / "defs" / pipeline_name
    defs.mkdir(parents=True)
    (root / "tests").mkdir()
    _write(root / "pyproject.toml", templates.PYPROJECT.substitute(project=name, package=package))
    _write(
        root / "README.md",
        templates.README.substitute(
            project=name,
            package=package,
            snake=names.snake,
            class_name=names.class_name,
            pipeline_name=pipeline_name,
            env_prefix=pipeline_name.upper(),
        ),
    )
    _write(root / ".gitignore", ".venv/\n__pycache__/\n.dagster_home/\nspark-warehouse/\n")
    _write(src / "__init__.py", f'"""The {name} project: PySetl pipelines under Dagster."""\n')
    _write(src / "definitions.py", templates.DEFINITIONS_MODULE.substitute(package=package))
    _write(src / "factories" / "__init__.py", '"""The project\'s PySetl Factories."""\n')
    _write(src / "factories" / f"{names.snake}.py", templates.render_factory(names.class_name))
    _write(src / "defs" / "__init__.py", '"""Components: one folder and defs.yaml each."""\n')
    templates.write_sample(src, pipeline_name, names.class_name, factory_import=factory_import)
    _write(
        defs / "defs.yaml",
        templates.render_defs_yaml(f"{package}.pipeline:build_pipeline", pipeline_name),
    )
    _write(root / "tests" / "conftest.py", templates.CONFTEST)
    _write(
        root / "tests" / f"test_{names.snake}.py",
        templates.render_factory_test(factory_import, names.class_name),
    )
    _write(
        root / "tests" / "test_pipeline.py",
        templates.PIPELINE_TEST.substitute(
            pipeline_import=f"{package}.pipeline", pipeline_name=pipeline_name, snake=names.snake
        ),
    )
    return root


def new_factory(name: str, project: Path) -> list[Path]:
    """Add Factory `name` (module and test) to the project at or above `project`.

    Returns:
        The files written.

    Raises:
        ScaffoldError: no project found, the name is not a class name, or the files exist.
    """
    try:
        class_name = templates.factory_class_name(name)
    except ValueError as exc:
        raise ScaffoldError(str(exc)) from exc
    root, package = _find_project(project)
    snake = snake_case(class_name)
    module = root / "src" / package / "factories" / f"{snake}.py"
    test = root / "tests" / f"test_{snake}.py"
    for path in (module, test):
        if path.exists():
            raise ScaffoldError(f"{path} exists: choose another name.")
    module.parent.mkdir(parents=True, exist_ok=True)
    init = module.parent / "__init__.py"
    if not init.exists():
        _write(init, '"""The project\'s PySetl Factories."""\n')
    test.parent.mkdir(parents=True, exist_ok=True)
    _write(
        module, templates.render_factory(class_name, summary=f"{class_name}: say what it computes.")
    )
    _write(test, templates.render_factory_test(f"{package}.factories.{snake}", class_name))
    return [module, test]


def _find_project(start: Path) -> tuple[Path, str]:
    """The project root (a pyproject.toml with `[tool.dg.project] root_module`) at or above
    `start`, and its package."""
    for folder in [start.resolve(), *start.resolve().parents]:
        pyproject = folder / "pyproject.toml"
        if not pyproject.exists():
            continue
        config = tomllib.loads(pyproject.read_text())
        package = config.get("tool", {}).get("dg", {}).get("project", {}).get("root_module")
        if package:
            return folder, str(package)
    raise ScaffoldError(
        f"no pysetl-dagster project at or above {start.resolve()} (a pyproject.toml with "
        "[tool.dg.project] root_module): run `pysetl-dagster init NAME` first, or pass "
        "--project."
    )


def _write(path: Path, text: str) -> None:
    """Write a new file (never over an existing one: a scaffold does not clobber work)."""
    with open(path, "x", encoding="utf-8") as fh:
        fh.write(text)
