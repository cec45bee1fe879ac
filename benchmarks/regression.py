"""Benchmark regression check: rerun the cheap modes and compare their ratios with a baseline.

Each benchmark has a `--quick` mode (small data, few rounds). The checked ones and the ratios
they report are listed in `benchmarks/baseline.json`, with the value each had when the
baseline was recorded. Only ratios are compared: both sides of a ratio are measured side by
side in one process, so a slower (or busier) machine moves both; absolute seconds would not
survive a change of machine. Every ratio here is a cost (higher is worse).

A ratio *regresses* when it reaches `factor` times its baseline (2.0: only a large regression
counts; the quick modes are noisy). A benchmark with a regressed ratio is run again, and the
check fails only when the rerun regresses too: one noisy run never fails the suite.

    python benchmarks/regression.py                 # check (scripts/test runs this)
    python benchmarks/regression.py --all           # also the entries with "in_gate": false
    python benchmarks/regression.py --update [--all]  # rerun and rewrite the baseline

An entry with `"in_gate": false` is too slow for every suite run (a Spark benchmark); it is
checked with `--all`, and an entry whose ratios are still null (never recorded) is skipped
with a line saying to record it. A benchmark that prints no ratio to compare (an absolute
latency, a correctness count) is listed under `"not_checked"` with the reason: every
benchmark is one or the other (tests/test_gates.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BASELINE = HERE / "baseline.json"


def _load_cpu_vs_dagster_only(lines: Sequence[Mapping[str, Any]]) -> float:
    # CPU seconds, not wall: a definitions load is pure Python in one thread, and CPU time is
    # what other processes on a shared machine disturb least.
    ours = [line["cpu_s"] for line in lines if "factories" in line]
    bare = [line["cpu_s"] for line in lines if "dagster_only_factories" in line]
    return round(statistics.median(ours) / statistics.median(bare), 3)


# Ratios a benchmark's output does not print as such, computed from all its JSON lines.
DERIVED: dict[str, dict[str, Callable[[Sequence[Mapping[str, Any]]], float]]] = {
    "load_definitions": {"load_cpu_vs_dagster_only": _load_cpu_vs_dagster_only},
}


def figures(name: str, stdout: str) -> dict[str, Any]:
    """The figures of one run: every JSON object line of its output merged in order (the
    last line, the one docs/benchmarks.md quotes, wins), plus the derived ratios."""
    lines = []
    for text in stdout.splitlines():
        text = text.strip()
        if text.startswith("{") and text.endswith("}"):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                lines.append(value)
    if not lines:
        raise RuntimeError(f"benchmarks/{name}.py --quick printed no JSON line:\n{stdout[-2000:]}")
    merged: dict[str, Any] = {}
    for line in lines:
        merged.update(line)
    for key, derive in DERIVED.get(name, {}).items():
        merged[key] = derive(lines)
    return merged


def regressions(
    name: str, baseline: Mapping[str, float], measured: Mapping[str, Any], factor: float
) -> list[str]:
    """One message per ratio at or above `factor` times its baseline (or missing)."""
    found = []
    for key, base in baseline.items():
        value = measured.get(key)
        if not isinstance(value, (int, float)):
            found.append(
                f"{name}: the quick run printed no ratio {key!r}; if the benchmark's output "
                "changed on purpose, rerun 'python benchmarks/regression.py --update'"
            )
        elif value >= factor * base:
            found.append(
                f"{name}: {key} = {value} is {value / base:.1f}x its baseline {base} "
                f"(fails at {factor}x)"
            )
    return found


def run_quick(name: str, timeout: float = 900) -> dict[str, Any]:
    """Run `benchmarks/<name>.py --quick` in a fresh interpreter and return its figures."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(HERE / f"{name}.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=HERE.parent,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"benchmarks/{name}.py --quick failed (exit {done.returncode}):\n"
            f"{(done.stdout + done.stderr)[-3000:]}"
        )
    result = figures(name, done.stdout)
    result["_seconds"] = round(time.perf_counter() - start, 1)
    return result


def _selected(spec: Mapping[str, Any], everything: bool) -> dict[str, dict[str, Any]]:
    return {
        name: entry
        for name, entry in spec["benchmarks"].items()
        if everything or entry.get("in_gate", True)
    }


def check(baseline_file: Path = BASELINE, everything: bool = False) -> int:
    """Run the benchmarks of the baseline; rerun the regressed ones; 1 if one regressed twice."""
    spec = json.loads(baseline_file.read_text())
    factor = float(spec["factor"])
    failed: list[str] = []
    for name, entry in _selected(spec, everything).items():
        ratios: dict[str, float] = entry["ratios"]
        if any(value is None for value in ratios.values()):
            print(
                f"benchmark {name}: no baseline recorded yet, not checked: run "
                "'python benchmarks/regression.py --update --all' on a quiet machine"
            )
            continue
        measured = run_quick(name)
        found = regressions(name, ratios, measured, factor)
        shown = ", ".join(f"{k} {measured.get(k)} (baseline {v})" for k, v in ratios.items())
        print(f"benchmark {name}: {shown} [{measured['_seconds']} s]", flush=True)
        if found:
            print(f"benchmark {name}: regressed, running it again: {'; '.join(found)}", flush=True)
            measured = run_quick(name)
            again = regressions(name, ratios, measured, factor)
            if again:
                failed.extend(again)
            else:
                print(f"benchmark {name}: the rerun is within {factor}x: noise, not a regression")
    if failed:
        print("benchmark regression (twice in a row):\n  " + "\n  ".join(failed))
        print("Profile the change (see docs/benchmarks.md for the full-size commands); if the "
              "new cost is intended, rerun 'python benchmarks/regression.py --update' and commit "
              "benchmarks/baseline.json.")  # fmt: skip
        return 1
    return 0


def update(baseline_file: Path = BASELINE, everything: bool = False) -> None:
    """Measure the benchmarks of the baseline once more and record their ratios."""
    spec = json.loads(baseline_file.read_text())
    for name, entry in _selected(spec, everything).items():
        measured = run_quick(name)
        entry["ratios"] = {key: measured[key] for key in entry["ratios"]}
        print(f"benchmark {name}: {entry['ratios']} [{measured['_seconds']} s]", flush=True)
    baseline_file.write_text(json.dumps(spec, indent=2) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="rewrite the baseline")
    parser.add_argument("--all", action="store_true", help='also the "in_gate": false entries')
    parser.add_argument("--baseline", type=Path, default=BASELINE)
    args = parser.parse_args()
    if args.update:
        update(args.baseline, args.all)
        return 0
    return check(args.baseline, args.all)


if __name__ == "__main__":
    sys.exit(main())
