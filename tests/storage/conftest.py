"""The storage tests run against both filesystem backends (`fs_backend`)."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["hadoop", "arrow"])
def fs_backend(request: pytest.FixtureRequest) -> str:
    """The filesystem backend a test's storage uses: Hadoop (py4j) or Arrow (no JVM)."""
    return str(request.param)
