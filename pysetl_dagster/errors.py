"""Errors raised by pysetl-dagster.

Every message names the Factory (and the Delivery or asset) at fault and says how to fix it,
because these errors surface in `dagster dev`'s code-location panel, far from the code.
"""

from __future__ import annotations

from dagster import DagsterInvalidDefinitionError


class PySetlDefinitionError(DagsterInvalidDefinitionError):
    """A PySetl pipeline cannot be turned into Dagster definitions (raised at load time)."""


class PySetlFactoryError(Exception):
    """A Factory failed while it ran under Dagster (raised at run time, chained to the cause)."""
