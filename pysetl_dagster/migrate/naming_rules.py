"""Names for generated code: Python identifiers and Factory class names from script names."""

from __future__ import annotations

import keyword
import re


def identifier(text: str) -> str:
    """A snake_case Python identifier (a package or pipeline name) from a file stem."""
    name = re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower() or "script"
    if name[0].isdigit():
        name = f"s_{name}"
    return f"{name}_" if keyword.iskeyword(name) else name


def camel(text: str) -> str:
    """`orders_by_day` -> `OrdersByDay` (a Factory class name)."""
    parts = re.split(r"[^0-9a-zA-Z]+|(?<=[a-z0-9])(?=[A-Z])", text)
    name = "".join(p[:1].upper() + p[1:] for p in parts if p)
    return name if name and not name[0].isdigit() else f"F{name}"
