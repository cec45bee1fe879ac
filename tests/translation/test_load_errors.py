"""Every load-time error names the Factory (and Delivery) and says how to fix it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from pysetl.workflow import Deliverable, Delivery, Factory, Pipeline, Stage

from pysetl_dagster import PySetlDefinitionError, PySetlTranslator, pysetl_pipeline
from tests.fixtures.numbers_pipeline import Numbers, StubFactory


class Untyped(StubFactory, Factory):  # type: ignore[type-arg]
    pass


class MakesInt(StubFactory, Factory[int]):
    pass


class AlsoMakesInt(StubFactory, Factory[int]):
    pass


class NeedsStr(StubFactory, Factory[float]):
    text = Delivery[str]()


class NeedsInt(StubFactory, Factory[float]):
    number = Delivery[int]()


class Ping(StubFactory, Factory[int]):
    pong = Delivery[str]()


class Pong(StubFactory, Factory[str]):
    ping = Delivery[int]()


def _pipeline(*stages: list[Factory[Any]]) -> Pipeline:
    pipeline = Pipeline()
    for factories in stages:
        stage = Stage()
        for factory in factories:
            stage.add_factory(factory)
        pipeline.add_stage(stage)
    return pipeline


def test_factory_without_type_parameter() -> None:
    with pytest.raises(
        PySetlDefinitionError, match=r"Factory Untyped has no type parameter.*Factory\[DataSet"
    ):
        pysetl_pipeline(_pipeline([Untyped()]), name="p")


def test_delivery_no_factory_produces() -> None:
    with pytest.raises(
        PySetlDefinitionError,
        match=r"NeedsStr\.text \(Delivery\[str\]\).*no Factory.*set_input_from_deliverable",
    ):
        pysetl_pipeline(_pipeline([MakesInt()], [NeedsStr()]), name="p")


def test_ambiguous_delivery() -> None:
    with pytest.raises(
        PySetlDefinitionError,
        match=r"NeedsInt\.number .* is ambiguous: 2 producers.*MakesInt.*AlsoMakesInt.*producer=",
    ):
        pysetl_pipeline(_pipeline([MakesInt(), AlsoMakesInt()], [NeedsInt()]), name="p")


def test_producer_in_a_later_stage() -> None:
    with pytest.raises(
        PySetlDefinitionError,
        match=r"NeedsInt\.number .* produced by MakesInt \(stage 1\).*earlier Stage",
    ):
        pysetl_pipeline(_pipeline([NeedsInt()], [MakesInt()]), name="p")


def test_cycle() -> None:
    with pytest.raises(
        PySetlDefinitionError,
        match=r"Cycle between Factories: (Ping -> Pong -> Ping|Pong -> Ping -> Pong)",
    ):
        pysetl_pipeline([Ping(), Pong()], name="p")


def test_two_factories_one_key() -> None:
    with pytest.raises(
        PySetlDefinitionError,
        match=r"Factory MakesInt and Factory MakesInt both map to asset key 'makes_int'",
    ):
        pysetl_pipeline(_pipeline([MakesInt()], [MakesInt()]), name="p")


def test_invalid_asset_key_characters() -> None:
    class Spaces(PySetlTranslator):
        def get_asset_spec(self, data: Any) -> dg.AssetSpec:
            return super().get_asset_spec(data).replace_attributes(key=dg.AssetKey(["my numbers"]))

    with pytest.raises(
        PySetlDefinitionError,
        match=r"Factory Numbers maps to asset key 'my numbers'.*get_asset_spec",
    ):
        pysetl_pipeline(_pipeline([Numbers()]), name="p", translator=Spaces())


def test_reserved_external_input() -> None:
    pipeline = _pipeline([NeedsInt()]).set_input_from_deliverable(
        Deliverable[int](3, consumers={NeedsStr})
    )
    with pytest.raises(PySetlDefinitionError, match=r"NeedsInt\.number.*reserved for NeedsStr"):
        pysetl_pipeline(pipeline, name="p")


def test_code_server_reports_the_error_not_a_bare_traceback(tmp_path: Path) -> None:
    """`dagster definitions validate` (what `dagster dev` runs to load code) shows our message."""
    module = tmp_path / "broken_defs.py"
    module.write_text(
        textwrap.dedent(
            """
            from pysetl.workflow import Delivery, Factory, Pipeline, Stage
            from pysetl_dagster import build_definitions, pysetl_pipeline

            class NeedsText(Factory[int]):
                text = Delivery[str]()
                def read(self): return self
                def process(self): return self
                def write(self): return self
                def get(self): return 1

            pipeline = Pipeline().add_stage(Stage().add_factory(NeedsText()))
            defs = build_definitions(pysetl_pipeline(pipeline, name="broken"))
            """
        )
    )
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "PYTHONPATH": os.getcwd()}
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-f", str(module)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "NeedsText.text (Delivery[str]): no Factory of pipeline 'broken' produces it" in output


def test_cli_describe_prints_the_wiring_or_the_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pysetl_dagster.cli.main import main

    assert main(["describe", "-m", "definitions"]) == 0
    assert "stage 1 EnrichedOrders" in capsys.readouterr().out
    broken = tmp_path / "broken_pipeline.py"
    broken.write_text(
        "from pysetl.workflow import Pipeline, Stage\n"
        "from pysetl_dagster import pysetl_pipeline\n"
        "from tests.translation.test_load_errors import NeedsStr\n"
        "p = pysetl_pipeline(Pipeline().add_stage(Stage().add_factory(NeedsStr())), name='b')\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        assert main(["describe", "-m", "broken_pipeline"]) == 1
        assert "error: NeedsStr.text (Delivery[str]): no Factory" in capsys.readouterr().err
    finally:
        sys.path.remove(str(tmp_path))
