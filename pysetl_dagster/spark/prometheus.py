"""Run and asset metrics in Prometheus format, pushed to a Pushgateway or served.

Everything comes from the run's Dagster event log (which holds the Spark metrics the IO
manager attached to each materialization), so the same figures appear in the Dagster UI and
in Prometheus/Grafana (dashboard: docker/grafana-pysetl-dashboard.json):

    pysetl_run_duration_seconds, pysetl_run_success
    pysetl_asset_step_failures{asset}, pysetl_asset_check_passed{asset,check}
    pysetl_asset_phase_seconds{asset,phase}   (read, process, write, store)
    pysetl_asset_rows{asset}                  (records written, from Spark)
    pysetl_asset_spark{asset,metric}          (jobs, stages, tasks, bytes, shuffle, spill...)

all labelled with `dagster_job` (not `job`: the Pushgateway's grouping key owns that label).
`push_run_metrics` pushes one run's metrics (grouping key: dagster_job); `prometheus_sensors` do it
after every finished run (needs the Dagster daemon, as `dagster dev` runs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunStatusSensorContext,
    SensorDefinition,
    run_status_sensor,
)

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

# prometheus_client is imported inside the functions that fill or send a registry: a code
# location that declares `prometheus_sensors` (a profile with metrics) loads its definitions
# without it, and the library is only needed when a sensor actually pushes after a run.


def _value(metadata_value: Any) -> Any:
    return getattr(metadata_value, "value", metadata_value)


def run_metrics_registry(instance: DagsterInstance, run_id: str) -> CollectorRegistry:
    """A registry holding one finished run's metrics, read from its event log."""
    from prometheus_client import CollectorRegistry, Gauge

    run = instance.get_run_by_id(run_id)
    if run is None:
        raise ValueError(f"Run {run_id} is not in this Dagster instance: check the run id.")
    job = run.job_name
    registry = CollectorRegistry()
    duration = Gauge("pysetl_run_duration_seconds", "Wall time of the run.", ["dagster_job"],
                     registry=registry)  # fmt: skip
    success = Gauge("pysetl_run_success", "1 if the run succeeded, else 0.", ["dagster_job"],
                    registry=registry)  # fmt: skip
    failures = Gauge("pysetl_asset_step_failures", "Failed steps of the asset in the run.",
                     ["dagster_job", "asset"], registry=registry)  # fmt: skip
    checks = Gauge("pysetl_asset_check_passed", "1 if the asset check passed, else 0.",
                   ["dagster_job", "asset", "check"], registry=registry)  # fmt: skip
    phases = Gauge("pysetl_asset_phase_seconds", "Wall time of a phase of the asset's step.",
                   ["dagster_job", "asset", "phase"], registry=registry)  # fmt: skip
    rows = Gauge("pysetl_asset_rows", "Records the asset's materialization wrote (Spark).",
                 ["dagster_job", "asset"], registry=registry)  # fmt: skip
    spark = Gauge("pysetl_asset_spark", "Spark metrics of the asset's materialization.",
                  ["dagster_job", "asset", "metric"], registry=registry)  # fmt: skip

    stats = instance.get_run_stats(run_id)
    if stats.start_time and stats.end_time:
        duration.labels(job).set(stats.end_time - stats.start_time)
    success.labels(job).set(1 if run.status == DagsterRunStatus.SUCCESS else 0)
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.event_specific_data.materialization  # type: ignore[union-attr]
            asset = materialization.asset_key.to_user_string()
            for name, raw in materialization.metadata.items():
                value = _value(raw)
                if not isinstance(value, int | float) or isinstance(value, bool):
                    continue
                if name.startswith("pysetl/") and name.endswith("_s"):
                    phases.labels(job, asset, name[len("pysetl/") : -2]).set(value)
                elif name == "spark/output_records":
                    rows.labels(job, asset).set(value)
                    spark.labels(job, asset, "output_records").set(value)
                elif name.startswith("spark/"):
                    spark.labels(job, asset, name[len("spark/") :]).set(value)
        elif event.event_type == DagsterEventType.STEP_FAILURE:
            failures.labels(job, event.step_key or "?").inc()
        elif event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            checks.labels(
                job,
                evaluation.asset_key.to_user_string(),  # type: ignore[union-attr]
                evaluation.check_name,  # type: ignore[union-attr]
            ).set(1 if evaluation.passed else 0)  # type: ignore[union-attr]
    return registry


def run_metrics_text(instance: DagsterInstance, run_id: str) -> str:
    """One run's metrics in Prometheus text format."""
    from prometheus_client import generate_latest

    return generate_latest(run_metrics_registry(instance, run_id)).decode()


def push_run_metrics(instance: DagsterInstance, run_id: str, gateway: str) -> None:
    """Push one run's metrics to a Pushgateway (`host:port`), grouped by job."""
    from prometheus_client import push_to_gateway

    run = instance.get_run_by_id(run_id)
    job = run.job_name if run else "unknown"
    push_to_gateway(
        gateway,
        job="pysetl_dagster",
        registry=run_metrics_registry(instance, run_id),
        grouping_key={"dagster_job": job},
    )


def prometheus_sensors(
    gateway: str,
    name: str = "pysetl_prometheus_push",
    default_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED,
) -> list[SensorDefinition]:
    """Sensors pushing every finished run's metrics (one for successes, one for failures):
    `build_definitions(..., sensors=prometheus_sensors("pushgateway:9091"))`."""

    def push(context: RunStatusSensorContext) -> None:
        push_run_metrics(context.instance, context.dagster_run.run_id, gateway)

    return [
        run_status_sensor(
            run_status=status,
            name=f"{name}_{status.value.lower()}",
            default_status=default_status,
            monitor_all_code_locations=False,
        )(push)
        for status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE)
    ]
