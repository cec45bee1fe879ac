"""What migrated pipelines import at run time: the active SparkSession and the script's argv.

Kept tiny and free of Dagster imports: generated modules use it at import time, and it must
never start Spark then (a session is only looked up when a Factory runs).
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pyspark.sql import SparkSession


def active_spark() -> SparkSession:
    """The session the run started (Dagster's resource), else a default one."""
    session = SparkSession.getActiveSession()
    return session if session is not None else SparkSession.builder.getOrCreate()


class ActiveSpark:
    """Stands in for a script's module-level `spark = SparkSession.builder...getOrCreate()`:
    helpers that use the global keep working, and nothing starts at import time."""

    def __getattr__(self, name: str) -> Any:
        return getattr(active_spark(), name)


def script_args(env_var: str) -> list[str]:
    """The command line the original script would get, from `$env_var` (shell syntax)."""
    return shlex.split(os.environ.get(env_var, ""))


@contextmanager
def script_argv(env_var: str, script_name: str) -> Iterator[None]:
    """Run the script's own argument handling (argparse, sys.argv) on `$env_var`'s arguments:
    unset means the script's defaults."""
    saved = sys.argv
    sys.argv = [script_name, *script_args(env_var)]
    try:
        yield
    finally:
        sys.argv = saved
