"""Retail example: a pure-PySetl ETL pipeline (no orchestrator imports)."""
