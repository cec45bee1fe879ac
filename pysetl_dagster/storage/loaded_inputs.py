"""Tie Spark's work to Dagster runs: labels, cancellation and metrics of every Spark job.

PySetl Factories are lazy: `read()`/`process()` mostly build plans, and the Spark jobs run
later, when the IO manager writes the output (and reads upstream versions inside that write).
So labels are set around *every* place that can start a job - the Factory's methods and the
IO manager's reads and writes - not just around the Factory.

A scope sets, for the current thread:
  - Spark job tags: the run (`dagster-run-<id>`), the asset (`dagster-asset-<key>`) and the
    step (`dagster-step-<id>-<key>`, what cancellation and metrics use), through
    `SparkSession.addTag` (works for classic and Spark Connect) and, on a classic session,
    `SparkContext.addJobTag` too (so RDD jobs carry them and the status tracker finds them);
  - a job group and a readable job description (classic only), e.g.
    `clean_orders · CleanOrders.process() · run 1a2b3c4d`;
and clears them on exit, tags it added and the job group/description alike (PySetl's
`Stage.run_factory` sets a job group and never clears it; `no_leaked_spark_labels` guards code
that calls PySetl natively).

When the scope ends with an exception (a Factory raised, or the run was terminated and
Dagster interrupted the step), the step's Spark jobs are cancelled, from another thread:
the interrupted thread's py4j connection may still be waiting for the cancelled call.
"""

from __future__ import annotations

import threading

# -- inputs loaded by the step running on this thread ----------------------------------------

_thread = threading.local()


def note_input(step_key: str, asset: str, version: str) -> None:
    """Remember that the step `step_key` loaded `version` of `asset` (for error messages)."""
    if getattr(_thread, "step_key", None) != step_key:
        _thread.step_key = step_key
        _thread.inputs = {}
    _thread.inputs[asset] = version


def loaded_inputs(step_key: str | None = None) -> dict[str, str]:
    """Asset -> storage version loaded by the latest step of this thread (or `step_key`)."""
    if step_key is not None and getattr(_thread, "step_key", None) != step_key:
        return {}
    return dict(getattr(_thread, "inputs", {}))
