"""The Markdown report of a migration: per source, and a summary table for the whole run."""

from __future__ import annotations

from collections import Counter

from .result import FileResult


def render_report(result: FileResult) -> str:
    """What went where (line ranges -> Factory), what could not be mapped and why."""
    a = result.analysis
    lines = [f"# Migration of `{result.source.name}`", ""]
    if result.status == "error":
        lines += [
            "**Not migrated: the file does not parse.**",
            "",
            f"    {result.error}",
            "",
            "Fix the syntax error and run the migration again.",
        ]
        return "\n".join(lines) + "\n"
    assert a is not None
    if result.status == "module":
        lines += [
            f"**Not migrated on its own**: {result.error}; it runs inside that script's "
            "pipeline (its Factory imports it as the script did).",
        ]
    elif result.status == "reported":
        lines += [
            "**Not migrated**: nothing was generated for it, for these reasons.",
            "",
            "| Where | Why | Suggestion |",
            "|---|---|---|",
        ]
        lines += [f"| {where} | {why} | - |" for where, why in result.reasons]
        if not result.reasons:
            lines += [f"| {a.where(p.line)} | {p.reason} | {p.suggestion} |" for p in a.problems]
    elif result.mode == "whole":
        lines += [
            f"Generated package `{result.name}` (`{result.name}/pipeline.py`, "
            f"`{result.name}/definitions.py`): **one Factory** running the whole script "
            f"(`_run_script()`: its module code and `__main__` block, in order), because "
            f"{result.why_whole}.",
            "",
            "Its functions, classes, imports and constants stay module level, verbatim; "
            "importing the package runs none of the script's code. The Factory's Config "
            f"`argv` is the whole command line (default: `{result.argv!r}`).",
        ]
        lines += _verification(result)
    else:
        lines += [
            f"Generated package `{result.name}` (`{result.name}/pipeline.py`, "
            f"`{result.name}/definitions.py`): {len([u for u in a.units if u.enabled])} "
            f"Factories in {len({u.stage for u in a.units if u.enabled})} Stages.",
            "",
            "| Lines | Factory | Stage | Receives | Delivers |",
            "|---|---|---|---|---|",
        ]
        by_uid = {u.uid: u for u in a.units}
        for u in sorted(a.units, key=lambda u: (u.stage, u.uid)):
            where = ", ".join(a.span(s) for s in u.statements)
            receives = ", ".join(
                f"`{v}` from {by_uid[p].name}" for v, p in sorted(u.inputs.items()) if ":" not in v
            )
            delivers = f"`{u.output}`" if u.output else "(writes a sink)"
            name = u.name if u.enabled else f"~~{u.name}~~ (sink not picked: not generated)"
            lines.append(f"| {where} | {name} | {u.stage} | {receives or '-'} | {delivers} |")
        lines += _verification(result)
    lines += _configuration(result)
    lines += _findings(result)
    if result.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in result.notes]
    return "\n".join(lines) + "\n"


def _verification(result: FileResult) -> list[str]:
    """The verdict of `--verify`, the sinks it compared, and ruff's remarks."""
    lines = ["", "## Verification", ""]
    if result.verify is None:
        lines.append("Not verified: run `pysetl-dagster migrate ... --verify`.")
    elif result.verify.equal:
        lines.append(
            f"**Equal**: the script and the pipeline wrote the same {len(result.verify.sinks)} "
            "sink(s), same schema and rows (order-insensitive): "
            + ", ".join(f"`{s}` ({result.verify.sizes.get(s, '?')})" for s in result.verify.sinks)
        )
    else:
        lines.append("**Different**:")
        lines += [f"- {d}" for d in result.verify.differences]
    if result.verify is not None and result.verify.redirected:
        lines += ["", "Writes outside the verification folder were kept in the sandbox:"]
        lines += [f"- `{k}` as `{v}`" for k, v in sorted(result.verify.redirected.items())]
    if result.verify is not None:
        lines.append(f"Both runs took {result.verify.seconds:.1f} s.")
    if result.lint:
        lines += ["", "## ruff", ""] + [f"    {x}" for x in result.lint]
    return lines


def _findings(result: FileResult) -> list[str]:
    """Every construct the reader must hear about, and what the migration did with it."""
    if not result.findings:
        return []
    a = result.analysis
    where = a.where if a is not None else (lambda line: f"line {line}")
    lines = [
        "",
        "## Constructs",
        "",
        "| Where | Construct | Code | What happened |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {where(f.line)} | {f.kind} | `{_cell(f.code)}` | {f.action} |" for f in result.findings
    ]
    return lines


def _configuration(result: FileResult) -> list[str]:
    """Which Config field of which Factory stands for what the script hard-coded or took."""
    from .params import plan_config

    a = result.analysis
    if a is None or result.status != "migrated" or result.mode == "whole":
        return []
    plan = plan_config(a)
    rows = plan.all_params()
    if not rows and not plan.fallback:
        return []
    env = f"$PYSETL_MIGRATE_ARGS_{a.name.upper()}"
    lines = ["", "## Configuration", ""]
    if plan.fallback:
        lines += [
            f"The script's command line stays a command line: {plan.fallback}. The pipeline "
            f"reads it from `{env}` (unset: the script's defaults).",
            "",
        ]
        lines += [f"- {k}: `{v}`" for k, v in a.config.items()]
    if rows:
        lines += [
            "Each Factory's Config (Launchpad, run config or `factory_config=`) holds what the "
            "script hard-coded or took as arguments; the defaults are the script's own"
            + (f", and a command line in `{env}` changes them." if plan.uses_command_line else "."),
            "",
            "| Factory | Field | Default | Script |",
            "|---|---|---|---|",
        ]
        for factory, p in rows:
            default = "(required)" if p.required else f"`{p.default!r}`"
            source = p.source_text()
            lines.append(f"| {factory} | `{p.field}` | {default} | {source}, {a.where(p.line)} |")
    return lines


def render_summary(results: list[FileResult]) -> str:
    """One line per file: Factories, sinks, verified or why not."""
    lines = [
        "# Migration summary",
        "",
        "| File | Factories | Sinks | Result |",
        "|---|---|---|---|",
    ]
    for r in results:
        factories, sinks = counts(r)
        lines.append(f"| {r.source.name} | {factories} | {sinks} | {r.verdict()} |")
    kinds = Counter(f.kind for r in results for f in r.findings)
    statuses = Counter(r.status for r in results)
    lines += [
        "",
        "Files: "
        + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
        + f"; {sum(1 for r in results if r.mode == 'whole' and r.migratable)} as one Factory.",
    ]
    if kinds:
        lines += ["", "| Construct | Count |", "|---|---|"]
        lines += [f"| {k} | {n} |" for k, n in sorted(kinds.items())]
    return "\n".join(lines) + "\n"


def counts(r: FileResult) -> tuple[int, int]:
    """(Factories, sinks) of a result's generated package."""
    if not r.migratable or r.analysis is None:
        return 0, 0
    if r.mode == "whole":
        return 1, len(r.verify.sinks) if r.verify is not None else 1
    units = [u for u in r.analysis.units if u.enabled]
    return len(units), sum(1 for u in units if u.is_sink)


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("`", "'")
