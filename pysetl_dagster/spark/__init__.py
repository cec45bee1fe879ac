"""Spark as a resource: the session resource, job labels and cancellation, metrics from Spark\047s
status store, driver and executor memory, and Prometheus export."""
