"""Which stored versions the step running on this thread loaded: error messages of a
Factory that fails in its write name the exact input versions it read. Thread-local and
replaced by the next step of the thread: bounded, never outliving a run.
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


def inherit_inputs(step_key: str, inputs: dict[str, str]) -> None:
    """Make `inputs` (asset -> version) what the step `step_key` loaded on this thread: a
    Factory of a Stage runs on a thread of its own, after the op's thread loaded its inputs."""
    _thread.step_key = step_key
    _thread.inputs = dict(inputs)
