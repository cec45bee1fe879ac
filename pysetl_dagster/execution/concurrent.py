"""Independent Factories of one step at the same time, on threads over the run's one session.

A Stage op (one Dagster step) runs its Factories, which never depend on each other (PySetl
feeds a Stage only from earlier Stages), through `run_concurrently`: each Factory's
`factory_step` runs on a thread of its own, at most `max_concurrent` at once, and the events
they yield (outputs, check evaluations) are handed to Dagster from the op's thread, the only
one allowed to yield them.

What stays per Factory on a thread:
  - Spark labels (job group, description, tags, FAIR scheduler pool): thread-local in Spark
    and set by the Factory's own `asset_scope` (see `spark/labels.py`);
  - metrics: selected by the Factory's step tag, which only its own thread's jobs carry;
  - logs: `execution/logs.py` forwards a thread's records to the step's log with the Factory's
    fields; the thread runs in a copy of the op's context variables, so it finds the step;
  - the inputs it read (error messages): handed to the thread by `inherit`.

A Factory that fails stops the Factories not yet started; those running finish (their outputs
are published, as the Factories before a failing one are when they run one after another),
then the first failure is raised. An interrupt (the run terminated) or a closed generator
cancels the running Factories' Spark jobs, interrupts their threads and waits for them.
"""

from __future__ import annotations

import contextvars
import ctypes
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from dagster import DagsterExecutionInterruptedError
from pyspark.sql import SparkSession

from pysetl_dagster.spark.labels import cancel_tag, step_tag

T = TypeVar("T")

_POLL_S = 0.2
"""How often the op's thread wakes while it waits for events (so a signal is handled)."""
_STOP_WAIT_S = 30.0
"""How long an interrupted step waits for its Factories' threads to stop."""


@dataclass(frozen=True)
class ConcurrentWork(Generic[T]):
    """One Factory's work: its asset (labels, cancellation) and the generator of its events."""

    asset: str
    events: Callable[[], Iterator[T]]
    inherit: Callable[[], None] | None = None
    """Run first on the Factory's thread: state a thread does not inherit (loaded inputs)."""


@dataclass
class _Message:
    index: int
    kind: str  # "event", "done" or "error"
    payload: Any = None


def run_concurrently(
    works: Sequence[ConcurrentWork[T]],
    *,
    max_concurrent: int,
    spark: SparkSession | None,
    run_id: str,
) -> Iterator[T]:
    """Yield the events of every work, running at most `max_concurrent` of them at once.

    With one work or `max_concurrent=1` they run one after another on the calling thread,
    exactly as without this function.
    """
    if max_concurrent <= 1 or len(works) <= 1:
        for work in works:
            yield from work.events()
        return
    messages: queue.Queue[_Message] = queue.Queue()
    pending = list(range(len(works)))
    running: dict[int, threading.Thread] = {}
    first_error: BaseException | None = None
    try:
        while pending or running:
            while pending and len(running) < max_concurrent and first_error is None:
                index = pending.pop(0)
                running[index] = _start(works[index], index, messages)
            if not running:
                break
            try:
                message = messages.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if message.kind == "event":
                yield message.payload
                continue
            running.pop(message.index).join()
            if message.kind == "error" and first_error is None:
                first_error = message.payload
                pending.clear()  # a failed Stage starts nothing more, as when run in order
    except BaseException:  # terminated run (interrupt), closed generator
        _stop(running, works, spark, run_id)
        raise
    if first_error is not None:
        raise first_error


def carry_active_session() -> Callable[[], None]:
    """Call on the parent thread; the result, called on a child thread, makes the parent's
    Spark Connect session active there too (Connect keeps the active session per thread, and a
    Factory's `getActiveSession()` must find the run's). A classic session is process-wide."""
    try:
        from pyspark.sql.connect.session import SparkSession as ConnectSession
    except ImportError:  # pragma: no cover - the Connect client is installed with pyspark
        return lambda: None
    session = getattr(ConnectSession._active_session, "session", None)
    if session is None:
        return lambda: None

    def activate() -> None:
        ConnectSession._active_session.session = session

    return activate


def _start(work: ConcurrentWork[Any], index: int, messages: queue.Queue[_Message]) -> Any:
    context = contextvars.copy_context()  # the op's context (its Dagster step, for logs)
    activate = carry_active_session()

    def target() -> None:
        try:
            activate()
            if work.inherit is not None:
                work.inherit()
            for event in work.events():
                messages.put(_Message(index, "event", event))
        except BaseException as exc:  # handed to the op's thread, which raises it
            messages.put(_Message(index, "error", exc))
        else:
            messages.put(_Message(index, "done"))

    thread = threading.Thread(
        target=context.run, args=(target,), name=f"pysetl-factory-{work.asset}", daemon=True
    )
    thread.start()
    return thread


def _stop(
    running: dict[int, threading.Thread],
    works: Sequence[ConcurrentWork[Any]],
    spark: SparkSession | None,
    run_id: str,
) -> None:
    """Cancel the running Factories' Spark jobs, raise the interrupt in their threads (for
    work in Python) and wait for them, so nothing of the step outlives it."""
    for index, thread in running.items():
        cancel_tag(spark, step_tag(run_id, works[index].asset))
        if thread.ident is not None and thread.is_alive():
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(thread.ident), ctypes.py_object(DagsterExecutionInterruptedError)
            )
    for thread in running.values():
        thread.join(_STOP_WAIT_S)
