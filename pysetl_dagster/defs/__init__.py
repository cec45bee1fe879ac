"""Dagster definitions built from a translated pipeline: Factory assets, Stage ops and jobs, the
pipeline record (`PySetlPipelineDefinitions`), templates and `build_definitions`, and profiles."""
