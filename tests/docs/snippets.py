"""Find and run the fenced python blocks of the documentation (docs/*.md and README.md).

Every ```` ```python ```` block of a page is executed, in order, in one namespace per page: a
page reads like a session, and a later block may use what an earlier one defined. A block that
is deliberately not runnable (an abridged listing, a fragment of a class) is marked on the line
right above its fence with an HTML comment, which the rendered page does not show:

    <!-- snippet: skip (abridged: each class also has read and get) -->

A reason in parentheses is required. Blocks in other languages (bash, yaml, text) never run.

The blocks of a page run as the module `docs_snippets.<page>` whose source is the page itself
with every line outside its runnable blocks blanked: tracebacks name `docs/<page>.md` and the
line, and `inspect.getsource` (which the cache key's code fingerprint uses) finds the classes a
snippet defines.
"""

from __future__ import annotations

import linecache
import re
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_MARKER = re.compile(r"^<!--\s*snippet:\s*(?P<what>\S+)\s*(?:\((?P<reason>[^)]*)\))?\s*-->\s*$")
_PYTHON = {"python", "py", "python3", "pycon"}


class SnippetSyntaxError(ValueError):
    """A page's fences or markers are malformed (an unclosed fence, a marker without reason)."""


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its language, its code and its skip reason."""

    page: Path
    line: int  # 1-based line of the first code line (the one after the opening fence)
    language: str
    code: str
    skip: str | None  # the reason given in a `snippet: skip (...)` marker, else None

    @property
    def runnable(self) -> bool:
        """A python block without a skip marker."""
        return self.language in _PYTHON and self.skip is None

    def where(self) -> str:
        """`docs/page.md:line`, for messages."""
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def pages() -> list[Path]:
    """README.md and every page of the site (docs/**/*.md outside docs/notes/)."""
    docs = ROOT / "docs"
    found = [p for p in sorted(docs.rglob("*.md")) if "notes" not in p.relative_to(docs).parts]
    return [ROOT / "README.md", *found]


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a page, with their markers checked."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    marker: tuple[int, str, str | None] | None = None  # (line, what, reason) of the last marker
    while i < len(lines):
        m = _MARKER.match(lines[i])
        if m:
            marker = (i, m["what"], m["reason"])
            i += 1
            continue
        m = _FENCE.match(lines[i])
        if not m:
            if lines[i].strip():
                _check_marker_used(page, marker)
                marker = None
            i += 1
            continue
        indent, fence = len(m["indent"]), m["fence"]
        info = m["info"].strip().lstrip("{").lstrip(".")
        language = re.split(r"[\s{}]", info, maxsplit=1)[0].lower() if info else ""
        start = i + 1
        j = start
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        if j == len(lines):
            raise SnippetSyntaxError(f"{page.relative_to(ROOT)}:{i + 1}: unclosed code fence")
        code = "\n".join(
            line[indent:] if line[:indent].isspace() else line for line in lines[start:j]
        )
        skip = None
        if marker is not None:
            line_no, what, reason = marker
            if what != "skip" or not (reason or "").strip():
                raise SnippetSyntaxError(
                    f"{page.relative_to(ROOT)}:{line_no + 1}: write the marker as "
                    "'<!-- snippet: skip (why this block cannot run) -->'"
                )
            if language not in _PYTHON:
                raise SnippetSyntaxError(
                    f"{page.relative_to(ROOT)}:{line_no + 1}: a skip marker above a "
                    f"{language or 'plain'} block: only python blocks run, remove the marker"
                )
            skip = reason
            marker = None
        found.append(Block(page, start + 1, language, code, skip))
        i = j + 1
    _check_marker_used(page, marker)
    return found


def _check_marker_used(page: Path, marker: tuple[int, str, str | None] | None) -> None:
    if marker is not None:
        raise SnippetSyntaxError(
            f"{page.relative_to(ROOT)}:{marker[0] + 1}: a snippet marker must be the line right "
            "above a code fence"
        )


def module_name(page: Path) -> str:
    """The module a page's blocks run in: docs_snippets.<path with dots>."""
    rel = page.relative_to(ROOT).with_suffix("")
    return "docs_snippets." + ".".join(re.sub(r"\W", "_", part) for part in rel.parts)


@contextmanager
def page_module(page: Path, runnable: list[Block]) -> Iterator[types.ModuleType]:
    """A fresh module for a page, registered (and its source in linecache) while it runs."""
    total = len(page.read_text(encoding="utf-8").splitlines())
    source = [""] * total
    for block in runnable:
        for k, line in enumerate(block.code.splitlines()):
            source[block.line - 1 + k] = line
    filename = str(page)
    text = [line + "\n" for line in source]
    name = module_name(page)
    module = types.ModuleType(name, f"The runnable snippets of {page.name}.")
    module.__file__ = filename
    saved = linecache.cache.get(filename)
    linecache.cache[filename] = (sum(map(len, text)), None, text, filename)
    sys.modules[name] = module
    try:
        yield module
    finally:
        sys.modules.pop(name, None)
        if saved is None:
            linecache.cache.pop(filename, None)
        else:
            linecache.cache[filename] = saved


def run_block(block: Block, module: types.ModuleType) -> None:
    """Execute one block in the page's module; line numbers are the page's."""
    code = compile("\n" * (block.line - 1) + block.code, str(block.page), "exec")
    exec(code, module.__dict__)
