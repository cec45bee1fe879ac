"""The `defs.yaml` listings of the docs are valid component YAML: each fenced yaml block whose
`type` is `pysetl_dagster.PySetlPipelineComponent` passes the schema `dg check defs` applies
(unknown or misspelled keys, wrong types), so a renamed attribute cannot leave the docs behind.
Python blocks run (test_snippets.py); these cannot run (they name the reader's modules), but
their shape is checked."""

from __future__ import annotations

import pytest
import yaml

from pysetl_dagster import PySetlPipelineComponent
from tests.docs.snippets import Block, blocks, pages

COMPONENT = "pysetl_dagster.PySetlPipelineComponent"


def _component_blocks() -> list[Block]:
    found = []
    for page in pages():
        for block in blocks(page):
            if block.language not in ("yaml", "yml"):
                continue
            document = yaml.safe_load(block.code)
            if isinstance(document, dict) and document.get("type") == COMPONENT:
                found.append(block)
    return found


BLOCKS = _component_blocks()


def test_the_components_page_shows_a_defs_yaml() -> None:
    assert any(b.page.name == "components.md" for b in BLOCKS)


@pytest.mark.parametrize("block", BLOCKS, ids=[b.where() for b in BLOCKS])
def test_a_documented_defs_yaml_passes_the_component_schema(block: Block) -> None:
    document = yaml.safe_load(block.code)
    assert set(document) <= {"type", "attributes"}, f"{block.where()}: {sorted(document)}"
    model = PySetlPipelineComponent.get_model_cls()
    try:
        model.model_validate(document["attributes"])
    except Exception as exc:  # pydantic's message names the key
        pytest.fail(f"{block.where()}: not a valid {COMPONENT} defs.yaml: {exc}")
