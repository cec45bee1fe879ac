"""From a PySetl Pipeline to what Dagster is told.

The wiring graph (Deliveries resolved as PySetl's Dispatcher does), names, the declarations a
Factory makes, asset specs and check plans, links between pipelines, partitions declarations
and the Mermaid diagram. Definition time only: no Spark, no storage.
"""
