"""The quality gates' own logic (scripts/test): the dependency audit's verdict and the
benchmark regression check's comparison. Their inputs are pip-audit's JSON report and the
benchmarks' JSON lines, given here as those tools print them."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

from benchmarks.regression import BASELINE, figures, regressions

ROOT = Path(__file__).resolve().parent.parent


def _audit() -> ModuleType:
    spec = importlib.util.spec_from_file_location("audit_deps", ROOT / "scripts" / "audit_deps.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["audit_deps"] = module  # dataclasses look their module up while defined
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["audit_deps"]
    return module


def test_audit_fails_only_on_fixable_vulnerabilities_of_direct_pins() -> None:
    audit = _audit()
    pins = audit.direct_pins()
    assert {"dagster", "pyspark", "pysetl", "mkdocs-material", "pip-audit"} <= pins
    report = {
        "dependencies": [
            {"name": "PyYAML", "version": "5.3", "vulns": [
                {"id": "PYSEC-1", "fix_versions": ["5.4"]}]},
            {"name": "pyspark", "version": "4.3.0", "vulns": [
                {"id": "GHSA-2", "fix_versions": []}]},
            {"name": "urllib3", "version": "1.0", "vulns": [
                {"id": "GHSA-3", "fix_versions": ["2.0"]}]},
            {"name": "dagster", "version": "1.13.27", "vulns": []},
            {"name": "private-thing", "skip_reason": "Dependency not found on PyPI"},
        ]
    }  # fmt: skip
    outcome = audit.classify(report, pins)
    assert outcome.failing == [
        "PyYAML 5.3: PYSEC-1 fixed in 5.4 (a direct pin: raise it in pyproject.toml)"
    ]
    assert outcome.reported == [
        "pyspark 4.3.0: GHSA-2 no fixed release yet (direct, nothing to upgrade to)",
        "urllib3 1.0: GHSA-3 fixed in 2.0 (transitive)",
    ]
    assert (outcome.audited, outcome.skipped) == (4, 1)


def test_regression_needs_a_large_ratio_and_names_it() -> None:
    baseline = {"ratio_vs_persisted": 1.2, "ratio": 0.5}
    assert regressions("overhead", baseline, {"ratio_vs_persisted": 2.3, "ratio": 0.9}, 2.0) == []
    found = regressions("overhead", baseline, {"ratio_vs_persisted": 2.4, "ratio": 0.4}, 2.0)
    assert found == ["overhead: ratio_vs_persisted = 2.4 is 2.0x its baseline 1.2 (fails at 2.0x)"]
    [missing] = regressions("overhead", baseline, {"ratio": 0.4}, 2.0)
    assert "printed no ratio 'ratio_vs_persisted'" in missing and "--update" in missing


def test_figures_merge_json_lines_and_derive_ratios() -> None:
    stdout = "\n".join(
        [
            "round 0: native 1.00s (warm-up)",
            json.dumps({"factories": 100, "load_s": 1.5, "cpu_s": 0.4}),
            "{not json}",
            json.dumps({"dagster_only_factories": 100, "load_s": 0.9, "cpu_s": 0.2}),
        ]
    )
    result = figures("load_definitions", stdout)
    assert result["load_cpu_vs_dagster_only"] == 2.0
    assert result["dagster_only_factories"] == 100


def test_every_benchmark_has_a_quick_mode_and_the_baseline_names_real_ones() -> None:
    benchmarks = {
        p.stem
        for p in (ROOT / "benchmarks").glob("*.py")
        if p.stem not in {"__init__", "regression"}
    }
    without = [
        b
        for b in sorted(benchmarks)
        if '"--quick"' not in (ROOT / "benchmarks" / f"{b}.py").read_text()
    ]
    assert not without, f"benchmarks without a --quick mode: {without}"
    spec = json.loads(BASELINE.read_text())
    assert spec["factor"] >= 1.5  # only a large regression fails
    # every benchmark is either checked (a ratio in "benchmarks") or left out with a reason
    checked, left_out = set(spec["benchmarks"]), set(spec.get("not_checked", {}))
    assert not checked & left_out, f"both checked and not checked: {sorted(checked & left_out)}"
    unclassified = sorted(benchmarks - checked - left_out)
    assert not unclassified, (
        f"benchmarks/baseline.json does not say whether {unclassified} is checked: add it under "
        '"benchmarks" (the ratios its --quick run prints) or under "not_checked" with the reason'
    )
    assert (checked | left_out) <= benchmarks
    assert all(len(reason) > 20 for reason in spec.get("not_checked", {}).values())
    gated = {n: e for n, e in spec["benchmarks"].items() if e.get("in_gate", True)}
    assert gated, "the gate checks at least one benchmark"
    for name, entry in spec["benchmarks"].items():
        assert entry["ratios"], name
        values = entry["ratios"].values()
        # a gated ratio is recorded; one outside the gate may wait for a quiet machine (null)
        allowed = (int, float) if name in gated else (int, float, type(None))
        assert all(isinstance(v, allowed) and (v is None or v > 0) for v in values), name
        assert re.fullmatch(r"[a-z_]+", name)
