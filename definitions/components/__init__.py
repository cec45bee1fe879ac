"""The example's pipelines as components: one folder and `defs.yaml` per pipeline."""
