"""pytest plugin of pysetl-dagster: a session-wide local SparkSession as the `spark` fixture.

Enable it in a `conftest.py` (or with `pytest -p pysetl_dagster.testing.plugin`):

    pytest_plugins = ["pysetl_dagster.testing.plugin"]

One JVM for the whole test session: starting Spark costs seconds, a test on small data
milliseconds. The session is stopped when the test session ends.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest
from pyspark.sql import SparkSession

from pysetl_dagster.testing import local_spark_session


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """A local SparkSession (`local[2]`, two shuffle partitions, no UI) for the session.

    Spark's Python workers use this interpreter unless `PYSPARK_PYTHON` says otherwise.
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = local_spark_session()
    yield session
    session.stop()
