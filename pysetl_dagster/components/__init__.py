"""Dagster components for PySetl pipelines (``dg scaffold``/``list``/``check defs``)."""
