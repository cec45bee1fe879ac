"""Launching runs without waiting for a fresh interpreter: a warm run launcher for `dagster dev`.

`WarmRunLauncher` runs each run as Dagster's own `dagster api execute_run` does, in a worker
process that was started, and had imported Dagster, Spark's client and this library, before
the run was launched. Configure it in the instance's `dagster.yaml` (`scripts/dev` does)::

    run_launcher:
      module: pysetl_dagster.launch.launcher
      class: WarmRunLauncher

(This package's `__init__` imports nothing: `python -m pysetl_dagster.launch.worker` runs the
worker without importing the launcher first.)
"""
