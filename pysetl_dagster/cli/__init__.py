"""`pysetl-dagster`: the command line (`main`), its cache commands and schema inference."""

from pysetl_dagster.cli.main import main

__all__ = ["main"]
