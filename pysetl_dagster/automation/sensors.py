"""Sensors generated from what a pipeline declares, next to the pipeline, in PySetl words.

    retail.on_new_files("/data/inbox/orders", factories=[CleanOrders], pattern="*.csv")
    returns.on_upstream()             # runs when a linked upstream pipeline's asset changes
    retail.on_failure(webhook_url=EnvVar("ALERT_WEBHOOK"))

Each call validates its arguments at once (a Factory that is not in the pipeline is a load-time
`PySetlDefinitionError` naming it) and returns a plain Dagster `SensorDefinition` that
`build_definitions` collects. Sensors start STOPPED unless `default_status` says otherwise:
switch them on in the UI (Automation tab) or declare `DefaultSensorStatus.RUNNING`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dagster import (
    AssetKey,
    DagsterRunStatus,
    DefaultSensorStatus,
    EnvVar,
    RunFailureSensorContext,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    run_failure_sensor,
    sensor,
)

from pysetl_dagster.automation.target import AutomationTarget
from pysetl_dagster.errors import PySetlDefinitionError
from pysetl_dagster.metadata import TagKey
from pysetl_dagster.translation.graph import ExternalInput, FactoryNode, PipelineGraph
from pysetl_dagster.translation.links import link_of
from pysetl_dagster.translation.specs import FactoryRef

"""A Factory named by its class or its class name."""

# Names that tools use while a file is still being copied or written; Spark skips `_`/`.` too.
TEMP_PREFIXES = (".", "_", "~")
TEMP_SUFFIXES = (".tmp", ".temp", ".part", ".partial", ".crdownload", ".filepart", ".copying", "~")
MAX_TAG_FILES = 20


# -- which Factories a sensor targets --------------------------------------------------------


def resolve_factories(
    pipeline: AutomationTarget, factories: Iterable[FactoryRef], what: str
) -> list[FactoryNode]:
    """The pipeline's nodes for the named Factories; an unknown name is a load-time error."""
    return pipeline.translated.find_factories(factories, what)


def with_downstream(graph: PipelineGraph, nodes: Iterable[FactoryNode]) -> list[FactoryNode]:
    """The nodes and every Factory of the pipeline that depends on them, in run order."""
    selected = set(nodes)
    for node in graph.nodes:  # run order: producers come first
        if any(r.source in selected for r in graph.inputs[node]):
            selected.add(node)
    return [n for n in graph.nodes if n in selected]


def consumers_of(graph: PipelineGraph, externals: Iterable[ExternalInput]) -> list[FactoryNode]:
    wanted = set(externals)
    return [n for n in graph.nodes if any(r.source in wanted for r in graph.inputs[n])]


def _keys(pipeline: AutomationTarget, nodes: Iterable[FactoryNode]) -> list[AssetKey]:
    return [pipeline.translated.key_of(n) for n in nodes]


# -- files arriving in a folder ----------------------------------------------------------------


@dataclass(frozen=True)
class SeenFile:
    """A file as one evaluation saw it: a new size or mtime makes it new again."""

    path: Path
    size: int
    mtime_ns: int

    @property
    def token(self) -> str:
        return f"{self.size}:{self.mtime_ns}"


def is_temporary(relative: Path) -> bool:
    """A name a copy in progress uses (or any part of its path is hidden)."""
    if any(part.startswith(TEMP_PREFIXES) for part in relative.parts):
        return True
    return relative.name.lower().endswith(TEMP_SUFFIXES)


def scan_folder(
    folder: Path, pattern: str, settle_seconds: float, now: float | None = None
) -> tuple[list[SeenFile], list[SeenFile]]:
    """Files matching `pattern` under `folder`: (settled, still being written).

    A file is settled when its name is not a temporary one and it was last modified at least
    `settle_seconds` ago; a file modified more recently may still be growing.
    """
    now = time.time() if now is None else now
    settled: list[SeenFile] = []
    settling: list[SeenFile] = []
    for path in sorted(folder.glob(pattern)):
        relative = path.relative_to(folder)
        if is_temporary(relative) or not fnmatch.fnmatch(path.name, Path(pattern).name):
            continue
        try:
            stat = path.stat()
        except FileNotFoundError:  # removed (or renamed) while we looked
            continue
        if not path.is_file():
            continue
        seen = SeenFile(path, stat.st_size, stat.st_mtime_ns)
        (settling if now - stat.st_mtime_ns / 1e9 < settle_seconds else settled).append(seen)
    return settled, settling


def _readers_of_folder(pipeline: AutomationTarget, folder: Path) -> list[FactoryNode]:
    """Factories whose external input's payload has a `path` in (or equal to) `folder`."""
    graph = pipeline.graph
    reading = []
    for ext in graph.externals:
        path = getattr(ext.payload, "path", None)
        if isinstance(path, str | Path):
            resolved = Path(path).expanduser().resolve()
            if resolved == folder or folder in resolved.parents:
                reading.append(ext)
    nodes = consumers_of(graph, reading)
    if not nodes:
        paths = ", ".join(f"{e.name}: {getattr(e.payload, 'path', '?')}" for e in graph.externals)
        raise PySetlDefinitionError(
            f"on_new_files({str(folder)!r}) of pipeline {pipeline.name!r}: no external input of "
            f"the pipeline reads from that folder (inputs: {paths or 'none'}). Pass the "
            "Factories that read the new files: on_new_files(folder, factories=[MyFactory])."
        )
    return nodes


def new_files_sensor(
    pipeline: AutomationTarget,
    folder: str | os.PathLike[str],
    *,
    factories: Sequence[FactoryRef] | None = None,
    pattern: str = "*",
    name: str | None = None,
    settle_seconds: float = 10.0,
    minimum_interval_seconds: int = 30,
    default_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED,
) -> SensorDefinition:
    """A sensor that runs the Factories reading `folder` (and what depends on them) when new
    files arrive there.

    Each evaluation lists `folder/pattern` and requests one run for every file it has not seen
    with that size and mtime (the cursor remembers path -> size:mtime, so a file triggers once,
    and again only when it is replaced). Files still being written do not trigger: a file must
    be unmodified for `settle_seconds` and not carry a temporary name (`.x`, `_x`, `x.tmp`,
    `x.part`, ...); write big files under a temporary name and rename them when complete. The
    run's tags list the new files (`pysetl/new_files`); the Factories read the folder itself.
    """
    folder_path = Path(folder).expanduser().resolve()
    sensor_name = name or f"{pipeline.name}_new_files"
    what = f"Sensor {sensor_name!r}"
    if factories is not None:
        readers = resolve_factories(pipeline, factories, what)
        if not readers:
            raise PySetlDefinitionError(f"{what}: `factories` is empty; name at least one.")
    else:
        readers = _readers_of_folder(pipeline, folder_path)
    targets = with_downstream(pipeline.graph, readers)
    keys = _keys(pipeline, targets)

    @sensor(
        name=sensor_name,
        job=pipeline.asset_job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=(
            f"New files matching {pattern!r} in {folder_path} run "
            + ", ".join(n.name for n in targets)
            + f" (pipeline {pipeline.name!r}); a file counts once it has been unchanged for "
            f"{settle_seconds:g} s."
        ),
    )
    def _new_files(context: SensorEvaluationContext) -> RunRequest | SkipReason:
        seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        if not folder_path.is_dir():
            return SkipReason(f"{folder_path} does not exist (yet).")
        settled, settling = scan_folder(folder_path, pattern, settle_seconds)

        # The cursor maps each present file's path (relative to the folder) to size:mtime.
        def name(f: SeenFile) -> str:
            return f.path.relative_to(folder_path).as_posix()

        new = [f for f in settled if seen.get(name(f)) != f.token]
        present = {name(f) for f in [*settled, *settling]}
        cursor = {p: t for p, t in seen.items() if p in present}  # forget deleted files
        cursor.update({name(f): f.token for f in new})
        context.update_cursor(json.dumps(cursor, sort_keys=True))
        if not new:
            waiting = f"; {len(settling)} still being written" if settling else ""
            return SkipReason(f"No new file in {folder_path}{waiting}.")
        names = [name(f) for f in new]
        run_key = hashlib.sha256(
            "\n".join(f"{f.path}:{f.token}" for f in new).encode()
        ).hexdigest()[:32]
        context.log.info(f"{len(new)} new file(s) in {folder_path}: {', '.join(names[:10])}")
        return RunRequest(
            run_key=run_key,
            asset_selection=keys,
            tags={
                TagKey.SENSOR: sensor_name,
                TagKey.FOLDER: str(folder_path),
                TagKey.NEW_FILE_COUNT: str(len(new)),
                TagKey.NEW_FILES: json.dumps(names[:MAX_TAG_FILES]),
            },
        )

    return _new_files


# -- another pipeline's asset changed ----------------------------------------------------------


def upstream_sensor(
    pipeline: AutomationTarget,
    *,
    name: str | None = None,
    minimum_interval_seconds: int = 30,
    default_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED,
) -> SensorDefinition:
    """A sensor that runs the pipeline's Factories that read another pipeline's asset (and what
    depends on them) whenever that asset gets a new materialization.

    The cursor keeps the last materialization seen per upstream asset (its event storage id);
    the first evaluation reacts to the latest existing one.
    """
    graph = pipeline.graph
    links = {ext: link for ext in graph.externals if (link := link_of(ext)) is not None}
    sensor_name = name or f"{pipeline.name}_on_upstream"
    if not links:
        raise PySetlDefinitionError(
            f"Sensor {sensor_name!r}: pipeline {pipeline.name!r} reads no other pipeline's "
            "output. Register one as an input first: "
            "`pipeline.set_input_from_deliverable(upstream.output(TheFactory))`."
        )
    consumers = {link.key: consumers_of(graph, [ext]) for ext, link in links.items()}
    sources = sorted({f"{link.pipeline}:{link.key.to_user_string()}" for link in links.values()})

    @sensor(
        name=sensor_name,
        job=pipeline.asset_job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=f"Runs pipeline {pipeline.name!r} when {', '.join(sources)} changes.",
    )
    def _on_upstream(context: SensorEvaluationContext) -> RunRequest | SkipReason:
        cursor: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
        updated: list[AssetKey] = []
        for key in consumers:
            records = context.instance.fetch_materializations(key, limit=1).records
            if records and records[0].storage_id > cursor.get(key.to_user_string(), -1):
                updated.append(key)
                cursor[key.to_user_string()] = records[0].storage_id
        context.update_cursor(json.dumps(cursor, sort_keys=True))
        if not updated:
            return SkipReason("No new materialization of " + ", ".join(sources) + ".")
        readers = [n for key in updated for n in consumers[key]]
        changed = ",".join(sorted(k.to_user_string() for k in updated))
        return RunRequest(
            run_key=f"{changed}@" + ",".join(str(cursor[k.to_user_string()]) for k in updated),
            asset_selection=_keys(pipeline, with_downstream(graph, readers)),
            tags={TagKey.SENSOR: sensor_name, TagKey.UPSTREAM: changed},
        )

    return _on_upstream


# -- a run failed ----------------------------------------------------------------------------


FailureHook = Callable[[dict[str, Any]], object]


def failure_record(pipeline: AutomationTarget, context: RunFailureSensorContext) -> dict[str, Any]:
    """What the failure hook receives: the run, the failed Factories and their errors."""
    by_step = {
        pipeline.translated.key_of(n).to_python_identifier(): n.name for n in pipeline.graph.nodes
    }
    failed = []
    for event in context.get_step_failure_events():
        step = event.step_key or ""
        error = event.step_failure_data.error if event.step_failure_data else None
        failed.append(
            {
                "step": step,
                "factory": by_step.get(step.split("[")[0]),
                "error": (_error_text(error) if error else event.message or "")[:2000],
            }
        )
    run = context.dagster_run
    return {
        "pipeline": pipeline.name,
        "job": run.job_name,
        "run_id": run.run_id,
        "status": DagsterRunStatus.FAILURE.value,
        "message": context.failure_event.message,
        "failed_steps": failed,
        "tags": dict(run.tags),
    }


def _error_text(error: Any) -> str:
    """The error and its causes, one message a line (Dagster wraps the Factory's error)."""
    lines: list[str] = []
    while error is not None and len(lines) < 10:
        lines.append(error.message.strip())
        error = error.cause or error.context
    return "\n".join(lines)


def _host(url: str) -> str:
    """Host and port of a URL: never its user info, path or query (they may be secrets)."""
    parts = urlsplit(url)
    return f"{parts.hostname or '?'}" + (f":{parts.port}" if parts.port else "")


def post_json(url: str, payload: dict[str, Any], timeout_seconds: float) -> int:
    """POST `payload` as JSON; the HTTP status, or an error naming the host (not the URL:
    webhook URLs often carry a secret)."""
    request = urllib.request.Request(
        url,
        data=json.dumps(payload, default=str).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "pysetl-dagster"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_seconds) as response:
            return int(response.status)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        host = _host(url)
        raise RuntimeError(f"Failure webhook on {host} did not accept the report: {exc}") from exc


def failure_sensor(
    pipeline: AutomationTarget,
    *,
    hook: FailureHook | None = None,
    webhook_url: str | EnvVar | None = None,
    name: str | None = None,
    timeout_seconds: float = 10.0,
    minimum_interval_seconds: int = 30,
    default_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED,
    timeout: float | None = None,
) -> SensorDefinition:
    """A run-failure sensor on the pipeline's jobs: it records the failure (tags
    `pysetl/failure_*` on the failed run, a line in the sensor's log) and calls the user's hook
    with a JSON-able record, and/or POSTs it to `webhook_url` (a string, or `EnvVar("NAME")`
    read when the sensor runs, so the URL stays out of the code). A hook or webhook that fails
    fails the sensor tick, which Dagster shows and retries."""
    if timeout is not None:  # the name before `*_seconds`: kept for one release
        warnings.warn(
            "failure_sensor(timeout=...) is deprecated: use timeout_seconds=...",
            DeprecationWarning,
            stacklevel=3,
        )
        timeout_seconds = timeout
    sensor_name = name or f"{pipeline.name}_on_failure"
    if hook is None and webhook_url is None:
        raise PySetlDefinitionError(
            f"Sensor {sensor_name!r}: give a `hook` (a function of the failure record) or a "
            "`webhook_url` (e.g. EnvVar('ALERT_WEBHOOK_URL')) to call when a run fails."
        )
    jobs: list[Any] = [pipeline.asset_job]
    if pipeline.stage_job is not None:
        jobs.append(pipeline.stage_job)

    @run_failure_sensor(
        name=sensor_name,
        monitored_jobs=jobs,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=f"Reports failed runs of pipeline {pipeline.name!r}.",
    )
    def _on_failure(context: RunFailureSensorContext) -> None:
        record = failure_record(pipeline, context)
        outcome = []
        if webhook_url is not None:
            url = webhook_url.get_value() if isinstance(webhook_url, EnvVar) else webhook_url
            if not url:
                raise PySetlDefinitionError(
                    f"Sensor {sensor_name!r}: environment variable {webhook_url!s} (the "
                    "failure webhook URL) is not set where the daemon runs."
                )
            status = post_json(url, record, timeout_seconds)
            outcome.append(f"webhook {_host(url)} -> HTTP {status}")
        if hook is not None:
            hook(record)
            outcome.append(f"hook {getattr(hook, '__name__', 'hook')} called")
        factories = ", ".join(str(f["factory"] or f["step"]) for f in record["failed_steps"])
        context.instance.add_run_tags(
            record["run_id"],
            {
                TagKey.FAILURE_RECORDED: sensor_name,
                TagKey.FAILURE_FACTORIES: factories[:1000],
                TagKey.FAILURE_HOOK: "; ".join(outcome),
            },
        )
        context.log.info(
            f"Run {record['run_id']} of {record['job']} failed ({factories or 'no step'}): "
            + "; ".join(outcome)
        )

    return _on_failure
