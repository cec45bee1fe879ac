"""Every python block of the documentation runs (README.md and docs/*.md).

One test per page: its blocks run in order in one namespace, on the session's SparkSession
(`spark` fixture: a snippet's `PySparkSessionResource` gets it back through getOrCreate),
from the repository root as a reader would (relative paths such as
`definitions/profiles.yaml` resolve, for Python and the Spark JVM alike) with a temporary
DAGSTER_HOME. Snippets write only into folders they create with `tempfile`: the test fails if
a page leaves anything new in the repository root.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from tests.docs.snippets import (
    ROOT,
    Block,
    SnippetSyntaxError,
    blocks,
    page_module,
    pages,
    run_block,
)

_PAGES = pages()


def _runnable(page: Path) -> list[Block]:
    return [b for b in blocks(page) if b.runnable]


@pytest.mark.parametrize(
    "page",
    [p for p in _PAGES if _runnable(p)],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_page_snippets_run(
    page: Path, spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    before = {p.name for p in ROOT.iterdir()}
    runnable = _runnable(page)
    with page_module(page, runnable) as module:
        for block in runnable:
            try:
                run_block(block, module)
            except Exception as exc:
                raise AssertionError(
                    f"the python block at {block.where()} failed: {type(exc).__name__}: {exc}\n"
                    "Fix the snippet (it is what readers copy), or, if it cannot run by nature, "
                    "mark it with '<!-- snippet: skip (why) -->' on the line above its fence."
                ) from exc
    left = {p.name for p in ROOT.iterdir()} - before
    assert not left, f"{page.name}'s snippets wrote {sorted(left)} into the repository root"


def test_every_page_parses_and_most_python_blocks_run() -> None:
    """Markers are well formed everywhere, and skipping stays the exception: at most one
    python block in five is marked not runnable."""
    python = [b for p in _PAGES for b in blocks(p) if b.language in {"python", "py"}]
    skipped = [b.where() for b in python if b.skip is not None]
    assert len(python) >= 15, [b.where() for b in python]
    assert len(skipped) * 5 <= len(python), skipped


def test_marker_syntax_is_enforced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A marker without a reason, a marker above a shell block and an unclosed fence are
    errors naming the page and line, so a typo cannot silently skip a snippet."""
    import tests.docs.snippets as snippets

    monkeypatch.setattr(snippets, "ROOT", tmp_path)
    page = tmp_path / "page.md"
    cases = {
        "<!-- snippet: skip -->\n```python\nx = 1\n```\n": "page.md:1: write the marker",
        "<!-- snippet: skip (shell) -->\n```bash\nls\n```\n": "page.md:1: a skip marker above",
        "text\n<!-- snippet: skip (why) -->\ntext\n```python\n```\n": "page.md:2: a snippet marker",
        "```python\nx = 1\n": "page.md:1: unclosed code fence",
    }
    for text, message in cases.items():
        page.write_text(text)
        with pytest.raises(SnippetSyntaxError, match=message):
            blocks(page)
    page.write_text(
        "<!-- snippet: skip (a fragment) -->\n\n```python\nx =\n```\n```py\ny = 2\n```\n"
    )
    found = blocks(page)
    assert [(b.line, b.skip, b.runnable) for b in found] == [
        (4, "a fragment", False),
        (7, None, True),
    ]
