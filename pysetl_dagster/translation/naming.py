"""Names: snake_case asset keys and the check that a key is one Dagster accepts."""

from __future__ import annotations

import re

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_WORD = re.compile(r"[^A-Za-z0-9_]+")
# Dagster accepts letters, digits, `_`, `-` and `.` in an asset key component.
VALID_KEY_COMPONENT = re.compile(r"^[A-Za-z0-9_.\-]+$")


def snake_case(name: str) -> str:
    """`CleanOrders` -> `clean_orders`, `HTTPLogs2` -> `http_logs2`, `my csv` -> `my_csv`."""
    spaced = _CAMEL_BOUNDARY.sub("_", name)
    return _NON_WORD.sub("_", spaced).strip("_").lower()


def invalid_key_components(components: list[str]) -> list[str]:
    """The components of an asset key that Dagster would reject."""
    return [c for c in components if not VALID_KEY_COMPONENT.match(c)]
