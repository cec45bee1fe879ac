"""What loading the example through `PySetlPipelineComponent` costs next to the Python API.

Each sample runs in a fresh interpreter (so import caches do not favour the second path) and
times, after `import dagster, pysetl_dagster`, the load a code server does: the module's
`Definitions` built and resolved (asset graph and jobs). `python` loads `definitions.defs`
(workspace.yaml, `scripts/dev`); `component` loads `definitions.dg_definitions` (what `dg`
loads: every `definitions/components/*/defs.yaml`, which also imports the example's package,
so it includes the Python path's module-level build). The paths alternate; medians are
reported, with `cpu_s` (this process's CPU) steadier than wall time on a shared machine.

    .venv/bin/python benchmarks/component_load.py [--repeat 3]

The last line is one JSON object: python_load_s, component_load_s, component_ratio (wall),
python_cpu_s, component_cpu_s, component_cpu_ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import json, time
import dagster, pysetl_dagster  # both paths need them: not part of the comparison
wall, cpu = time.perf_counter(), time.process_time()
if {component!r}:
    from definitions.dg_definitions import defs
    defs = defs()
else:
    from definitions import defs
defs.resolve_asset_graph()
defs.resolve_all_job_defs()
print(json.dumps({{"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}}))
"""


def sample(component: bool) -> dict[str, float]:
    """One load in a fresh interpreter: wall and CPU seconds."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(component=component)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    """Alternate the two paths `--repeat` times; print the medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--quick", action="store_true", help="a cheap run (benchmarks/regression.py): --repeat 1"
    )
    args = parser.parse_args()
    if args.quick:
        args.repeat = 1
    python, component = [], []
    for _ in range(args.repeat):
        python.append(sample(False))
        component.append(sample(True))

    def median(runs: list[dict[str, float]], what: str) -> float:
        return round(statistics.median(r[what] for r in runs), 3)

    report = {
        "python_load_s": median(python, "wall"),
        "component_load_s": median(component, "wall"),
        "python_cpu_s": median(python, "cpu"),
        "component_cpu_s": median(component, "cpu"),
    }
    report["component_ratio"] = round(report["component_load_s"] / report["python_load_s"], 2)
    report["component_cpu_ratio"] = round(report["component_cpu_s"] / report["python_cpu_s"], 2)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
