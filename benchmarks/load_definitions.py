"""How long 100 and 1,000 Factories take to become loaded Dagster definitions.

Generates synthetic PySetl pipelines (10 Stages; each Factory consumes one or two Factories of
the Stage before), then times, after all imports: translating the pipeline, building
`Definitions`, and loading them as `dagster definitions validate` does (resolved asset graph
and jobs). Prints one JSON object per size; the last line is the largest size. `load_s` is
wall time; `cpu_s` is this process's CPU time over the same span, steadier than wall time on a
shared machine (other work slows the wall clock but not, mostly, the CPU seconds we use).

`--dagster-only` also times Dagster alone on the same shape (bare assets, one job), the floor
no translation can go under: once with `multi_asset` (`dagster_only_factories`) and once with
each asset built directly from `OpDefinition` + `AssetsDefinition`
(`dagster_direct_factories`), as pysetl-dagster builds its Factory assets. `--import` first
measures, in fresh interpreters, `from pysetl_dagster import build_definitions,
pysetl_pipeline` against the floor of the two
libraries it cannot do without (`import pysetl, dagster`), and lists the optional libraries
it loaded (should be none); `--bytecode` adds the same from compiled bytecode, as a
pip-installed package is imported (this machine sets PYTHONDONTWRITEBYTECODE=1, so otherwise
every run compiles pysetl-dagster's own modules, while Dagster's were compiled at install).

    .venv/bin/python benchmarks/load_definitions.py [--sizes 100 1000] [--repeat 3]
        [--import [--bytecode]] [--dagster-only]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dagster as dg
from dagster import AssetExecutionContext
from pysetl.workflow import Delivery, Factory, Pipeline, Stage

from pysetl_dagster import build_definitions, pysetl_pipeline

# Generic classes subscripted with types made at run time (mypy can't follow those).
DeliveryOf: Any = Delivery
FactoryOf: Any = Factory


def _methods() -> dict[str, Any]:
    def read(self: Any) -> Any:
        return self

    def process(self: Any) -> Any:
        self.out = self.__class__.__name__
        return self

    def write(self: Any) -> Any:
        return self

    def get(self: Any) -> Any:
        return self.out

    return {"read": read, "process": process, "write": write, "get": get}


def _filler(namespace: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    return lambda ns: ns.update(namespace)


def synthetic_pipeline(n_factories: int, n_stages: int = 10) -> Pipeline:
    """`n_factories` Factories with distinct output types, wired stage to stage."""
    per_stage = max(1, n_factories // n_stages)
    outputs = [types.new_class(f"Out{i}") for i in range(n_factories)]
    pipeline = Pipeline()
    stage = Stage()
    for i in range(n_factories):
        stage_index, position = divmod(i, per_stage)
        namespace: dict[str, Any] = {"__doc__": f"Synthetic factory {i}.", **_methods()}
        if stage_index > 0:
            previous = (stage_index - 1) * per_stage
            namespace["first"] = DeliveryOf[outputs[previous + position]]()
            if position + 1 < per_stage:
                namespace["second"] = DeliveryOf[outputs[previous + position + 1]]()
        factory_type: Any = types.new_class(
            f"Factory{i}", (FactoryOf[outputs[i]],), {}, _filler(namespace)
        )
        factory_type.__module__ = __name__
        stage.add_factory(factory_type())
        if position == per_stage - 1 or i == n_factories - 1:
            pipeline.add_stage(stage)
            stage = Stage()
    return pipeline


def load_seconds(n_factories: int) -> tuple[float, float]:
    """Wall and CPU seconds from the pipeline to loaded definitions."""
    pipeline = synthetic_pipeline(n_factories)  # the user's code: not timed
    start, start_cpu = time.perf_counter(), time.process_time()
    defs = build_definitions(
        pysetl_pipeline(pipeline, name=f"synthetic_{n_factories}"), storage_path="/tmp/unused"
    )
    dg.Definitions.validate_loadable(defs)
    defs.resolve_asset_graph()
    defs.resolve_all_job_defs()
    return time.perf_counter() - start, time.process_time() - start_cpu


def _upstreams(i: int, per_stage: int) -> range:
    """The Factories the `i`-th reads, as in `synthetic_pipeline`: one or two of the Stage
    before (none in the first Stage)."""
    stage_index, position = divmod(i, per_stage)
    if stage_index == 0:
        return range(0)
    previous = (stage_index - 1) * per_stage + position
    return range(previous, previous + (2 if position + 1 < per_stage else 1))


def _load_bare(tag: str, assets: list[Any], start: float, start_cpu: float) -> tuple[float, float]:
    """One asset job over the bare assets, the `Definitions` validated and resolved as
    `loaded_seconds` does; wall and CPU seconds since `start`."""
    job = dg.define_asset_job(f"{tag}_assets", selection=dg.AssetSelection.groups(tag))
    resources = {"pyspark": dg.ResourceDefinition.none_resource(), "io_manager": dg.mem_io_manager}
    defs = dg.Definitions(assets=assets, jobs=[job], resources=resources)
    dg.Definitions.validate_loadable(defs)
    defs.resolve_asset_graph()
    defs.resolve_all_job_defs()
    return time.perf_counter() - start, time.process_time() - start_cpu


def dagster_only_seconds(n_factories: int, n_stages: int = 10) -> tuple[float, float]:
    """Dagster alone on the same shape, for comparison: one bare `multi_asset` per Factory
    (same inputs, `can_subset`, two resource keys), one asset job over all of them, the
    `Definitions` validated and resolved as above. No translation, checks, Stage job."""
    per_stage = max(1, n_factories // n_stages)
    tag = f"bare_{n_factories}_{time.monotonic_ns()}"
    start, start_cpu = time.perf_counter(), time.process_time()
    assets = []
    for i in range(n_factories):
        ins = {f"in_{tag}_{u}": dg.AssetIn(key=f"{tag}_{u}") for u in _upstreams(i, per_stage)}

        def compute(context: AssetExecutionContext, **kwargs: Any) -> Any:
            yield dg.Output(None)

        # this module's annotations are strings, which Dagster's context check does not read
        compute.__annotations__ = {"context": AssetExecutionContext, "kwargs": Any, "return": Any}

        out = dg.AssetOut(key=f"{tag}_{i}", is_required=False, code_version="0", group_name=tag)
        keys = {"pyspark", "io_manager"}
        assets.append(
            dg.multi_asset(name=f"{tag}_{i}", outs={f"{tag}_{i}": out}, ins=ins,
                           can_subset=True, required_resource_keys=keys)(compute)
        )  # fmt: skip
    return _load_bare(tag, assets, start, start_cpu)


def _bare_compute(context: AssetExecutionContext, inputs: dict[str, Any]) -> Iterator[Any]:
    yield dg.Output(None)


# this module's annotations are strings, which Dagster's context check does not read
_bare_compute.__annotations__ = {"context": AssetExecutionContext, "inputs": dict, "return": Any}


def dagster_direct_seconds(n_factories: int, n_stages: int = 10) -> tuple[float, float]:
    """Dagster alone on the same shape as `dagster_only_seconds`, each asset built without the
    decorator (`OpDefinition` + `AssetsDefinition`, Dagster's public constructors), the way
    pysetl-dagster builds its Factory assets: what is left of the floor without
    `multi_asset`'s reading back of each function."""
    per_stage = max(1, n_factories // n_stages)
    tag = f"direct_{n_factories}_{time.monotonic_ns()}"
    start, start_cpu = time.perf_counter(), time.process_time()
    assets = []
    for i in range(n_factories):
        keys_by_input_name = {
            f"in_{tag}_{u}": dg.AssetKey(f"{tag}_{u}") for u in _upstreams(i, per_stage)
        }
        name = f"{tag}_{i}"
        op = dg.OpDefinition(
            compute_fn=_bare_compute,
            name=name,
            ins={input_name: dg.In() for input_name in keys_by_input_name},
            outs={name: dg.Out(is_required=False, code_version="0")},
            required_resource_keys={"pyspark", "io_manager"},
        )
        spec = dg.AssetSpec(
            name, deps=list(keys_by_input_name.values()), code_version="0", group_name=tag
        )
        assets.append(
            dg.AssetsDefinition(
                keys_by_input_name=keys_by_input_name,
                keys_by_output_name={name: spec.key},
                node_def=op,
                can_subset=True,
                specs=[spec],
            )
        )
    return _load_bare(tag, assets, start, start_cpu)


#: Libraries only some users need: importing the definition API must not load them.
OPTIONAL = ("pandera", "dagster_pandera", "polars", "pandas", "libcst", "nbformat", "rich",
            "prometheus_client", "pysetl_dagster.migrate", "pyspark.sql.connect")  # fmt: skip

_IMPORT_PROBE = """
import json, sys, time
start, start_cpu = time.perf_counter(), time.process_time()
{statement}
wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
print(json.dumps({{"wall": wall, "cpu": cpu,
                  "optional": [m for m in {optional!r} if m in sys.modules]}}))
"""


def import_seconds(statement: str, pycache: str | None = None) -> dict[str, Any]:
    """Wall and CPU seconds of `statement` in a fresh interpreter (its start-up not counted).
    With `pycache`, modules are read from (and written to) bytecode there, as an installed
    package's are; without, the environment decides (PYTHONDONTWRITEBYTECODE=1 makes every
    run compile this project's modules from source)."""
    probe = _IMPORT_PROBE.format(statement=statement, optional=OPTIONAL)
    env = dict(os.environ)
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = pycache
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                         text=True, cwd=root, env=env)  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def measure_import(repeat: int, bytecode: bool = False) -> dict[str, Any]:
    """Median import time of the definition API and of its floor, alternated run by run.
    `bytecode`: both read compiled bytecode from a private cache (written by a first, uncounted
    import of each), as a pip-installed package does."""
    api = "from pysetl_dagster import build_definitions, pysetl_pipeline"
    floor = "import pysetl, dagster"
    runs: dict[str, list[dict[str, Any]]] = {api: [], floor: []}
    with tempfile.TemporaryDirectory(prefix="pycache-") as cache:
        pycache = cache if bytecode else None
        if bytecode:
            for statement in runs:
                import_seconds(statement, pycache)
        for _ in range(repeat):
            for statement, results in runs.items():
                results.append(import_seconds(statement, pycache))

    def median(statement: str, field: str) -> float:
        return round(statistics.median(r[field] for r in runs[statement]), 3)

    return {
        **({"bytecode": True} if bytecode else {}),
        "import_s": median(api, "wall"),
        "import_cpu_s": median(api, "cpu"),
        "floor_s": median(floor, "wall"),
        "floor_cpu_s": median(floor, "cpu"),
        "import_runs_s": [round(r["wall"], 3) for r in runs[api]],
        "optional_loaded": sorted({m for r in runs[api] for m in r["optional"]}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--import",
        dest="measure_import",
        action="store_true",
        help="also time importing the definition API in fresh interpreters",
    )
    parser.add_argument(
        "--bytecode",
        action="store_true",
        help="with --import: also time the imports from compiled bytecode, as installed",
    )
    parser.add_argument(
        "--dagster-only",
        action="store_true",
        help="also time Dagster alone on the same shape (no pysetl-dagster), for comparison",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a cheap run (benchmarks/regression.py): --sizes 100 --repeat 3 --dagster-only",
    )
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.repeat, args.dagster_only = [100], 3, True
    if args.measure_import:
        print(json.dumps(measure_import(args.repeat)))
        if args.bytecode:
            print(json.dumps(measure_import(args.repeat, bytecode=True)))
    load_seconds(10)  # warm imports and caches the first call pays
    if args.dagster_only:
        dagster_only_seconds(10)
        dagster_direct_seconds(10)
    for size in args.sizes:
        runs = [load_seconds(size) for _ in range(args.repeat)]
        times = [wall for wall, _ in runs]
        cpu = round(statistics.median(cpu for _, cpu in runs), 3)
        print(json.dumps({"factories": size, "load_s": round(statistics.median(times), 3),
                          "runs_s": [round(t, 3) for t in times], "cpu_s": cpu}))  # fmt: skip
        if args.dagster_only:
            bare = [dagster_only_seconds(size) for _ in range(args.repeat)]
            bare_wall = round(statistics.median(w for w, _ in bare), 3)
            bare_cpu = round(statistics.median(c for _, c in bare), 3)
            print(json.dumps({"dagster_only_factories": size, "load_s": bare_wall,
                              "cpu_s": bare_cpu}))  # fmt: skip
            direct = [dagster_direct_seconds(size) for _ in range(args.repeat)]
            direct_wall = round(statistics.median(w for w, _ in direct), 3)
            direct_cpu = round(statistics.median(c for _, c in direct), 3)
            print(json.dumps({"dagster_direct_factories": size, "load_s": direct_wall,
                              "cpu_s": direct_cpu}))  # fmt: skip


if __name__ == "__main__":
    main()
