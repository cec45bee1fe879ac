"""What runs inside a Dagster step: the Factory step in phases (decide, compute, store and audit,
publish or reject, report), the PySetl Factory runner, inputs from other pipelines, and logs."""
