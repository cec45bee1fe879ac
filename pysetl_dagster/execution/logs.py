"""PySetl's logs and a Factory's own `logging` calls in Dagster's run log, with context.

PySetl's `HasLogger` logs through the root logger (`logging.info(...)`), and a Factory's code
uses `logging` however it likes; none of it reaches Dagster's run log by itself. While a
Factory runs, `factory_logging` puts a handler on the root logger that forwards the records
of that thread to the step's Dagster log with the run id, asset key and Factory as fields
(`[run=… asset=… factory=…] message`, or one JSON object per record when the run's Spark
resource says `log_format="json"`, for log aggregation).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_local = threading.local()
_SKIP = ("dagster", "py4j", "pyspark", "urllib3", "alembic", "sqlalchemy", "grpc")


def format_record(record: logging.LogRecord, fields: dict[str, str], log_format: str) -> str:
    message = record.getMessage()
    if record.exc_info and record.exc_info[0] is not None:
        message += "\n" + logging.Formatter().formatException(record.exc_info)
    if log_format == "json":
        return json.dumps(
            {
                **fields,
                "logger": record.name,
                "level": record.levelname,
                "message": message,
                "time": record.created,
            }
        )
    return "[" + " ".join(f"{k}={v}" for k, v in fields.items()) + f"] {message}"


class DagsterRunLogHandler(logging.Handler):
    """Forwards the records of the thread running a Factory to that step's Dagster log."""

    def emit(self, record: logging.LogRecord) -> None:
        target = getattr(_local, "target", None)
        if target is None or getattr(_local, "busy", False) or record.name.startswith(_SKIP):
            return
        log, fields, log_format = target
        _local.busy = True  # Dagster's logger must not feed back into this handler
        try:
            log.log(record.levelno, format_record(record, fields, log_format))
        except Exception:
            self.handleError(record)
        finally:
            _local.busy = False


_HANDLER = DagsterRunLogHandler(level=logging.INFO)
_INSTALL_LOCK = threading.Lock()
_installs = 0


def _current_dagster_log() -> Any:
    """The running step's Dagster log (its records carry the step and run), or None."""
    from dagster import OpExecutionContext

    try:
        return OpExecutionContext.get().log
    except Exception:
        return None


@contextmanager
def factory_logging(
    run_id: str, asset: str, factory: str, log_format: str = "text"
) -> Iterator[None]:
    """Forward this thread's log records (INFO and up) to the step's Dagster log while a
    Factory runs. The root logger's level is lowered to INFO meanwhile (PySetl logs at INFO)."""
    log = _current_dagster_log()
    if log is None:
        yield
        return
    global _installs
    root = logging.getLogger()
    with _INSTALL_LOCK:
        if _installs == 0:
            root.addHandler(_HANDLER)
            _local_root_level[0] = root.level
            if root.level > logging.INFO or root.level == logging.NOTSET:
                root.setLevel(logging.INFO)
        _installs += 1
    previous = getattr(_local, "target", None)
    fields = {"run": run_id, "asset": asset, "factory": factory}
    _local.target = (log, fields, log_format)
    try:
        yield
    finally:
        _local.target = previous
        with _INSTALL_LOCK:
            _installs -= 1
            if _installs == 0:
                root.removeHandler(_HANDLER)
                root.setLevel(_local_root_level[0])


_local_root_level: list[int] = [logging.WARNING]
