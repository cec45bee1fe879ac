"""The example as `dg` loads it: every PySetlPipelineComponent under `definitions/components/`.

`dg list defs`, `dg check defs` and `dg dev` (run from the repository root, configured by
`dg.toml`) load this module; `tests/components/test_component.py` checks it gives the same
assets, checks, jobs, schedules and sensors as `definitions.defs` (the Python API).
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    """The definitions of every `defs.yaml` under `definitions/components/`."""
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
