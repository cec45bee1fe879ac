"""The executor of pysetl-dagster's jobs: independent Factories at the same time, each way
where it is cheap.

Dagster 1.13 ships two ways to run steps: `in_process` (one after another) and `multiprocess`
(a process per step). On a classic session a process per step is a JVM and a SparkSession per
step (seconds each, and no shared cache), so neither runs Factories in parallel cheaply. This
executor chooses per run, from the run's Spark resource (`pyspark`):

- **threads** (the default): the ready steps run on threads of the run process, all on
  its one SparkSession (classic or Connect), each Factory's Spark jobs in a FAIR scheduler
  pool named after its asset (`spark/labels.py`), at most `max_concurrent_factories` at once;
- **processes** (asked for with `mode: processes`, sensible under Spark Connect only):
  Dagster's multiprocess executor; a step process connects to the server in under a second and
  starts no JVM, but imports the code location again (seconds of CPU per step), so under
  Connect too the default is threads over the run's one Connect session. When the job cannot be
  run in other processes (`materialize()`, an ephemeral instance) it falls back to threads;
- **in_process** (`max_concurrent_factories: 1`): Dagster's in-process executor, unchanged.

The bound is the Spark resource's `max_concurrent_factories` (profile key
`spark.max_concurrent_factories`), which the Stage job's ops read too; the run config of the
executor may override it and the mode:

    execution:
      config: {max_concurrent_factories: 2, mode: threads}  # or auto, processes, in_process
"""

from __future__ import annotations

import ctypes
import os
import queue
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from dagster import DagsterExecutionInterruptedError, Enum, EnumValue, Field, Int, executor
from dagster import _check as check
from dagster._core.definitions.reconstruct import ReconstructableJob
from dagster._core.events import DagsterEvent, EngineEventData
from dagster._core.execution.api import ExecuteRunWithPlanIterable
from dagster._core.execution.context.system import (
    PlanExecutionContext,
    PlanOrchestrationContext,
    StepExecutionContext,
)
from dagster._core.execution.context_creation_job import PlanExecutionContextManager
from dagster._core.execution.plan.execute_plan import (
    _trigger_hook,
    dagster_event_sequence_for_step,
)
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._core.execution.retries import RetryMode, get_retries_config
from dagster._core.execution.step_dependency_config import (
    StepDependencyConfig,
    get_step_dependency_config_field,
)
from dagster._core.executor.base import Executor
from dagster._core.executor.in_process import InProcessExecutor
from dagster._core.executor.init import InitExecutorContext
from dagster._core.executor.multiprocess import MultiprocessExecutor

from pysetl_dagster.execution.concurrent import carry_active_session
from pysetl_dagster.spark.labels import active_session, cancel_run_jobs

SPARK_RESOURCE_KEY = "pyspark"
MODES = ("auto", "threads", "processes", "in_process")
_POLL_S = 0.2
_STOP_WAIT_S = 30.0


def _spark_settings(resource_config: Mapping[str, Any] | None) -> tuple[int | None, bool]:
    """(max_concurrent_factories, is Spark Connect) from the run's Spark resource config."""
    config = dict(resource_config or {})
    bound = config.get("max_concurrent_factories")
    return (int(bound) if bound else None), bool(config.get("remote"))


def factory_concurrency(context: Any) -> int:
    """How many Factories of one Stage op may run at once: the executor's run config
    override, else the run's Spark resource's `max_concurrent_factories`."""
    override = None
    try:
        execution = context.get_step_execution_context().resolved_run_config.execution
        override = (execution.execution_engine_config or {}).get("max_concurrent_factories")
    except Exception:  # not a step of a run (direct invocation): the resource decides
        pass
    if override:
        return int(override)
    resource = getattr(context.resources, SPARK_RESOURCE_KEY, None)
    return int(getattr(resource, "max_concurrent_factories", 1) or 1)


@dataclass
class PySetlExecutor(Executor):
    """Chooses threads, processes or in-process per run (see the module docstring)."""

    retry_mode: RetryMode
    max_concurrent: int | None = None
    mode: str = "auto"
    dependency_config: StepDependencyConfig = field(default_factory=StepDependencyConfig.default)

    @property
    def retries(self) -> RetryMode:
        return self.retry_mode

    @property
    def step_dependency_config(self) -> StepDependencyConfig:
        return self.dependency_config

    def choose(self, plan_context: PlanOrchestrationContext) -> tuple[str, int, str]:
        """(mode, bound, why) of this run."""
        from dagster._core.system_config.objects import ResolvedRunConfig

        resolved = ResolvedRunConfig.build(
            plan_context.job.get_definition(), plan_context.run_config
        )
        resource = resolved.resources.get(SPARK_RESOURCE_KEY)
        bound, remote = _spark_settings(resource.config if resource is not None else None)
        limit = self.max_concurrent or bound or 1
        mode = self.mode
        why = f"mode {mode!r} from the executor's config"
        if mode == "auto":
            if limit <= 1:
                mode, why = "in_process", "max_concurrent_factories is 1"
            elif remote:
                # A step process starts no JVM under Connect, but it imports the code location
                # again (seconds of CPU per step); threads share the run's Connect session.
                mode, why = "threads", "a Spark Connect session: threads share the run's session"
            else:
                mode, why = "threads", "a classic session: threads share its one JVM"
        if mode == "processes" and not self._can_use_processes(plan_context):
            mode = "threads"
            why += "; this job cannot run in other processes (not loaded from a code location, "
            why += "or an ephemeral instance), so threads"
        return mode, limit, why

    @staticmethod
    def _can_use_processes(plan_context: PlanOrchestrationContext) -> bool:
        return isinstance(plan_context.job, ReconstructableJob) and not (
            plan_context.instance.is_ephemeral
        )

    def execute(
        self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan
    ) -> Iterator[DagsterEvent]:
        mode, limit, why = self.choose(plan_context)
        if mode == "in_process" or limit <= 1:
            yield from InProcessExecutor(self.retry_mode, self.dependency_config).execute(
                plan_context, execution_plan
            )
            return
        if mode == "processes":
            yield DagsterEvent.engine_event(
                plan_context,
                f"pysetl-dagster: up to {limit} Factories at once in processes ({why})",
                event_specific_data=EngineEventData(),
            )
            yield from MultiprocessExecutor(
                self.retry_mode, limit, step_dependency_config=self.dependency_config
            ).execute(plan_context, execution_plan)
            return
        yield DagsterEvent.engine_event(
            plan_context,
            f"pysetl-dagster: up to {limit} Factories at once on threads over one SparkSession "
            f"in process {os.getpid()} ({why})",
            event_specific_data=EngineEventData.in_process(
                os.getpid(), execution_plan.step_keys_to_execute
            ),
        )

        def iterator(
            job_context: PlanExecutionContext, execution_plan: ExecutionPlan
        ) -> Iterator[DagsterEvent]:
            return threaded_plan_iterator(job_context, execution_plan, limit)

        yield from iter(
            ExecuteRunWithPlanIterable(
                execution_plan=plan_context.execution_plan,
                iterator=iterator,
                execution_context_manager=PlanExecutionContextManager(
                    job=plan_context.job,
                    retry_mode=plan_context.retry_mode,
                    execution_plan=plan_context.execution_plan,
                    run_config=plan_context.run_config,
                    dagster_run=plan_context.dagster_run,
                    instance=plan_context.instance,
                    raise_on_error=plan_context.raise_on_error,
                    output_capture=plan_context.output_capture,
                    step_dependency_config=self.dependency_config,
                ),
            )
        )


@dataclass
class _Message:
    step_key: str
    event: DagsterEvent | None = None
    error: BaseException | None = None
    done: bool = False


@dataclass
class _Running:
    thread: threading.Thread
    step_context: StepExecutionContext
    events: list[DagsterEvent] = field(default_factory=list)


def threaded_plan_iterator(
    job_context: PlanExecutionContext, execution_plan: ExecutionPlan, max_concurrent: int
) -> Iterator[DagsterEvent]:
    """Dagster's in-process plan iteration (`inner_plan_execution_iterator`) with up to
    `max_concurrent` ready steps running on threads; events are handled on this thread."""
    compute_log_manager = job_context.instance.compute_log_manager
    step_keys = [step.key for step in execution_plan.get_steps_to_execute_in_topo_order()]
    from dagster._core.execution.compute_logs import create_compute_log_file_key

    with (
        InstanceConcurrencyContext(job_context.instance, job_context.dagster_run) as concurrency,
        execution_plan.start(
            retry_mode=job_context.retry_mode,
            instance_concurrency_context=concurrency,
            step_dependency_config=job_context.step_dependency_config,
        ) as active,
    ):
        log_key = compute_log_manager.build_log_key_for_run(
            job_context.run_id, create_compute_log_file_key()
        )
        with compute_log_manager.capture_logs(log_key) as log_context:
            yield DagsterEvent.capture_logs(job_context, step_keys, log_key, log_context)
            messages: queue.Queue[_Message] = queue.Queue()
            running: dict[str, _Running] = {}
            errors: list[BaseException] = []
            stopping = False
            try:
                while running or (not stopping and not active.is_complete):
                    if not stopping and active.check_for_interrupts():
                        stopping = True
                        active.mark_interrupted()
                        yield DagsterEvent.engine_event(
                            job_context,
                            "pysetl-dagster: the run was interrupted: cancelling the Spark "
                            "jobs of the running steps and stopping their threads",
                            EngineEventData.interrupted(list(running)),
                        )
                        _interrupt(running, job_context.run_id)
                    if not stopping and not errors:
                        steps = active.get_steps_to_execute(limit=max_concurrent - len(running))
                        yield from active.concurrency_event_iterator(job_context)
                        for step in steps:
                            step_context = job_context.for_step(step, active.get_known_state())
                            running[step.key] = _Running(
                                _start(step.key, step_context, messages), step_context
                            )
                    if not running:
                        if active.is_complete or stopping or errors:
                            break
                        active.sleep_til_ready()
                        yield from active.plan_events_iterator(job_context)
                        continue
                    try:
                        message = messages.get(timeout=_POLL_S)
                    except queue.Empty:
                        continue
                    entry = running[message.step_key]
                    if message.event is not None:
                        entry.events.append(message.event)
                        yield message.event
                        active.handle_event(message.event)
                        continue
                    del running[message.step_key]
                    entry.thread.join()
                    if message.error is not None:
                        errors.append(message.error)
                    active.verify_complete(job_context, message.step_key)
                    for event in active.plan_events_iterator(job_context):
                        entry.events.append(event)
                        yield event
                    yield from _trigger_hook(entry.step_context, entry.events)
            except BaseException:
                _interrupt(running, job_context.run_id)
                raise
            if stopping:
                raise DagsterExecutionInterruptedError()
            if errors:
                raise errors[0]


def _start(
    step_key: str, step_context: StepExecutionContext, messages: queue.Queue[_Message]
) -> threading.Thread:
    activate = carry_active_session()

    def target() -> None:
        try:
            activate()
            for event in check.generator(dagster_event_sequence_for_step(step_context)):
                messages.put(_Message(step_key, event=event))
        except BaseException as exc:  # raised on the executor's thread once all steps ended
            messages.put(_Message(step_key, error=exc, done=True))
        else:
            messages.put(_Message(step_key, done=True))

    thread = threading.Thread(target=target, name=f"pysetl-step-{step_key}", daemon=True)
    thread.start()
    return thread


def _interrupt(running: Mapping[str, _Running], run_id: str) -> None:
    """Cancel the run's Spark jobs and raise Dagster's interrupt in the steps' threads (for
    work in Python), then wait for them: a terminated run leaves nothing running."""
    if not running:
        return
    cancel_run_jobs(active_session(), run_id)
    for entry in running.values():
        ident = entry.thread.ident
        if ident is not None and entry.thread.is_alive():
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(ident), ctypes.py_object(DagsterExecutionInterruptedError)
            )
    for entry in running.values():
        entry.thread.join(_STOP_WAIT_S)


@executor(
    name="pysetl",
    config_schema={
        "max_concurrent_factories": Field(
            Int,
            is_required=False,
            description="Factories run at once (default: the Spark resource's "
            "max_concurrent_factories).",
        ),
        "mode": Field(
            Enum("PySetlExecutionMode", [EnumValue(m) for m in MODES]),
            default_value="auto",
            description="auto: threads over the run's one SparkSession (classic or Connect), "
            "in_process when the bound is 1; processes: a process per step (Connect only).",
        ),
        "retries": get_retries_config(),
        "step_dependency_config": get_step_dependency_config_field(),
    },
)
def pysetl_executor(init_context: InitExecutorContext) -> Executor:
    """Independent Factories at the same time: threads over one session (classic), processes
    (Spark Connect), or one after another (`max_concurrent_factories: 1`)."""
    config = init_context.executor_config
    return PySetlExecutor(
        retry_mode=RetryMode.from_config(check.dict_elem(config, "retries")),  # type: ignore[arg-type]
        max_concurrent=check.opt_int_elem(config, "max_concurrent_factories"),
        mode=str(config.get("mode") or "auto"),
        dependency_config=StepDependencyConfig.from_config(
            check.opt_nullable_dict_elem(config, "step_dependency_config")
        ),
    )


__all__ = ["PySetlExecutor", "factory_concurrency", "pysetl_executor", "threaded_plan_iterator"]
