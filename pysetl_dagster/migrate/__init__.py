"""`pysetl-dagster migrate`: PySpark scripts and notebooks become PySetl pipelines for Dagster."""
