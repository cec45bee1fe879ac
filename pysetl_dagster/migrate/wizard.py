"""`--interactive`: review the proposed Factories of a file before generation.

Line-based, so it works in a plain terminal and from a test (scripted stdin):

    rename N NAME     give unit N another Factory name
    merge N M         make units N and M one Factory
    split N           one Factory per statement of unit N (where the data flow allows)
    skip N            do not generate sink N (its write is left out; reported)
    keep N            generate sink N again
    done              generate (also at end of input)

A change the data flow does not allow (a Factory delivering two DataFrames, two Factories
needing each other) is refused with the reason, and the proposal stays as it was.
"""

from __future__ import annotations

import keyword
from typing import TextIO

from rich.console import Console
from rich.table import Table

from .analysis import Analysis, Unit, build_units, data_edges

HELP = "commands: rename N NAME | merge N M | split N | skip N | keep N | done"


def show(analysis: Analysis, console: Console) -> None:
    table = Table(title=f"{analysis.path.name}: proposed Factories")
    for column in ("#", "Factory", "Stage", "Lines", "Kind"):
        table.add_column(column)
    for i, u in enumerate(_ordered(analysis), start=1):
        kind = "sink" if u.is_sink else "source" if not u.inputs else "transform"
        if not u.enabled:
            kind += " (skipped)"
        table.add_row(str(i), u.name, str(u.stage), u.lines, kind)
    console.print(table)


def _ordered(analysis: Analysis) -> list[Unit]:
    return sorted(analysis.units, key=lambda u: (u.stage, u.uid))


def review(analysis: Analysis, stdin: TextIO, console: Console) -> None:
    """Apply the user's commands to `analysis.units` until `done` or end of input."""
    show(analysis, console)
    console.print(HELP)
    while True:
        console.print("> ", end="")
        line = stdin.readline()
        if not line:
            break
        words = line.split()
        if not words:
            continue
        if words[0] == "done":
            break
        try:
            apply(analysis, words)
        except (ValueError, IndexError) as exc:
            console.print(f"[red]refused[/red]: {exc}")
            continue
        show(analysis, console)


def _unit(analysis: Analysis, token: str) -> Unit:
    units = _ordered(analysis)
    if not token.isdigit() or not 1 <= int(token) <= len(units):
        raise ValueError(f"no unit {token!r}: pick a number from 1 to {len(units)}")
    return units[int(token) - 1]


def apply(analysis: Analysis, words: list[str]) -> None:
    """One wizard command (see the module docstring)."""
    command = words[0]
    if command == "rename":
        unit, name = _unit(analysis, words[1]), words[2]
        if not name.isidentifier() or keyword.iskeyword(name):
            raise ValueError(f"{name!r} is not a valid class name")
        if any(u.name == name for u in analysis.units if u is not unit):
            raise ValueError(f"another Factory is already called {name}")
        unit.name = name
    elif command in ("skip", "keep"):
        unit = _unit(analysis, words[1])
        if not unit.is_sink:
            raise ValueError(f"{unit.name} is not a sink: only sinks can be skipped")
        if command == "skip" and any(unit.uid in u.inputs.values() for u in analysis.units):
            raise ValueError(f"other Factories read what {unit.name} delivers")
        unit.enabled = command == "keep"
    elif command == "merge":
        a, b = _unit(analysis, words[1]), _unit(analysis, words[2])
        if a is b:
            raise ValueError("merge needs two different units")
        groups = [_members(analysis, u) for u in analysis.units if u not in (a, b)]
        groups.append(_members(analysis, a) | _members(analysis, b))
        _regroup(analysis, groups, {min(_members(analysis, a)): a.name})
    elif command == "split":
        unit = _unit(analysis, words[1])
        groups = [_members(analysis, u) for u in analysis.units if u is not unit]
        groups += [{m} for m in _members(analysis, unit)]
        try:
            _regroup(analysis, groups, {})
        except ValueError as exc:
            raise ValueError(f"{unit.name} cannot be split: {exc}") from None
    else:
        raise ValueError(f"unknown command {command!r}; {HELP}")


def _members(analysis: Analysis, unit: Unit) -> set[int]:
    data, _ = data_edges(analysis.statements, analysis.spark_names)
    position = {id(s): i for i, s in enumerate(data)}
    return {position[id(s)] for s in unit.statements}


def _regroup(analysis: Analysis, groups: list[set[int]], names: dict[int, str]) -> None:
    data, edges = data_edges(analysis.statements, analysis.spark_names)
    position = {id(s): i for i, s in enumerate(data)}
    for u in analysis.units:
        first = min(position[id(s)] for s in u.statements)
        names.setdefault(first, u.name)
    skipped = {min(position[id(s)] for s in u.statements) for u in analysis.units if not u.enabled}
    units = build_units(data, edges, groups, names)
    for u in units:
        if min(position[id(s)] for s in u.statements) in skipped and u.is_sink:
            u.enabled = False
    analysis.units = units
