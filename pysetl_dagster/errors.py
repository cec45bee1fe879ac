"""Errors raised by pysetl-dagster: one base, `PySetlError`, so a caller can catch them all.

Every message names the Factory (and the Delivery, asset, file or key) at fault and says how to
fix it, because these errors surface in `dagster dev`'s code-location panel or a run's event
log, far from the code that caused them.
"""

from __future__ import annotations

from dagster import DagsterInvalidDefinitionError


class PySetlError(Exception):
    """The base of every exception pysetl-dagster raises."""


class PySetlDefinitionError(PySetlError, DagsterInvalidDefinitionError):
    """A PySetl pipeline cannot be turned into Dagster definitions (raised at load time).

    Also a `DagsterInvalidDefinitionError`, so Dagster shows it as a definition error of the
    code location.
    """


class PySetlFactoryError(PySetlError):
    """A Factory failed while it ran under Dagster (raised at run time, chained to the cause)."""


class PySetlStorageError(PySetlError):
    """An asset has no readable stored output, or a storage location cannot be used."""


class PySetlProfileError(PySetlError, ValueError):
    """A profile file or section is invalid: it names the file, the profile and the key."""


class PySetlSparkError(PySetlError, RuntimeError):
    """The SparkSession cannot start (no Java, a wrong master or Connect URL)."""
