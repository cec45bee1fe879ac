"""Dependency vulnerability audit of the pinned set (scripts/test runs it with the venv's python).

pip-audit looks every installed distribution of the environment (what pyproject.toml's pins
resolved to) up in PyPI's advisory data (the `vulnerabilities` of PyPI's JSON API, fed by the
PyPA advisory database and OSV). The outcome:

- advisory data not reachable (offline, a proxy, a mirror without the JSON API): one line
  saying the audit was skipped and why; exit 0;
- vulnerabilities found: each is listed; the audit fails (exit 1) only for a vulnerability
  with a fixed release in one of *our direct pins* (pyproject's dependencies and extras),
  since that is a one-line change in pyproject.toml; the others (transitive, or no fix yet)
  are reported and do not fail the suite.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# pip-audit's PyPI service reads https://pypi.org/pypi/<name>/<version>/json; the same lookup
# for one pin we have installed says whether the whole audit can work from here.
PROBE = "https://pypi.org/pypi/{name}/{version}/json"


def canonical(name: str) -> str:
    """PEP 503 normalised name: pip-audit and pyproject may spell a name differently."""
    return re.sub(r"[-_.]+", "-", name).lower()


def direct_pins(pyproject: Path = ROOT / "pyproject.toml") -> set[str]:
    """The distributions pyproject.toml names: dependencies and every optional extra."""
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements: list[str] = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        requirements.extend(extra)
    names = set()
    for requirement in requirements:
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
        if match:
            names.add(canonical(match.group(1)))
    return names


def advisory_data_unreachable(url: str | None = None, timeout: float = 15) -> str | None:
    """None when PyPI's JSON API answers with advisory data; else why not, in a few words."""
    if url is None:
        url = PROBE.format(name="dagster", version=importlib.metadata.version("dagster"))
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return f"{url} answered HTTP {exc.code}"
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        return f"{url} is not reachable ({getattr(exc, 'reason', exc)})"
    except json.JSONDecodeError:
        return f"{url} did not answer JSON"
    if "vulnerabilities" not in body:
        return f"{url} answered without advisory data"
    return None


@dataclass
class Outcome:
    """The audit's verdict: what fails it, what is only reported, and how much was seen."""

    failing: list[str] = field(default_factory=list)
    reported: list[str] = field(default_factory=list)
    audited: int = 0
    skipped: int = 0


def classify(report: Mapping[str, Any], direct: Iterable[str]) -> Outcome:
    """Sort pip-audit's JSON report (`pip-audit -f json`) into failing and reported findings."""
    pins = {canonical(n) for n in direct}
    outcome = Outcome()
    for dependency in report.get("dependencies", []):
        if "skip_reason" in dependency:
            outcome.skipped += 1
            continue
        outcome.audited += 1
        name = canonical(dependency["name"])
        for vuln in dependency.get("vulns", []):
            fixes = vuln.get("fix_versions") or []
            line = f"{dependency['name']} {dependency.get('version', '?')}: {vuln.get('id')} " + (
                f"fixed in {', '.join(fixes)}" if fixes else "no fixed release yet"
            )
            if name in pins and fixes:
                outcome.failing.append(line + " (a direct pin: raise it in pyproject.toml)")
            else:
                why = "transitive" if name not in pins else "direct, nothing to upgrade to"
                outcome.reported.append(f"{line} ({why})")
    return outcome


def main() -> int:
    unreachable = advisory_data_unreachable()
    if unreachable:
        print(f"dependency audit: SKIPPED, PyPI's advisory data is not reachable: {unreachable}")
        return 0
    done = subprocess.run(
        [sys.executable, "-m", "pip_audit", "-f", "json", "--progress-spinner", "off", "-l"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        print(f"dependency audit: SKIPPED, pip-audit gave no report: {done.stderr.strip()[-500:]}")
        return 0
    outcome = classify(report, direct_pins())
    if outcome.audited == 0:
        print(
            "dependency audit: SKIPPED, none of the "
            f"{outcome.skipped} installed distributions could be looked up on PyPI"
        )
        return 0
    print(
        f"dependency audit: {outcome.audited} distributions checked"
        + (f" ({outcome.skipped} not found on PyPI)" if outcome.skipped else "")
        + f", {len(outcome.failing) + len(outcome.reported)} known vulnerabilities"
    )
    for line in outcome.reported:
        print(f"  reported: {line}")
    for line in outcome.failing:
        print(f"  FAILS:    {line}")
    return 1 if outcome.failing else 0


if __name__ == "__main__":
    sys.exit(main())
