"""The Markdown report of a migration: per source, and a summary table for the whole run."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .engine import FileResult


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
    if result.status == "reported":
        lines += [
            "**Not migrated**: these constructs cannot be mapped to Factories without "
            "changing what the script does, so nothing was generated for it.",
            "",
            "| Where | Why | Suggestion |",
            "|---|---|---|",
        ]
        lines += [f"| {a.where(p.line)} | {p.reason} | {p.suggestion} |" for p in a.problems]
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
        lines += ["", "## Verification", ""]
        if result.verify is None:
            lines.append("Not verified: run `pysetl-dagster migrate ... --verify`.")
        elif result.verify.equal:
            lines.append(
                f"**Equal**: the script and the pipeline wrote the same {len(result.verify.sinks)} "
                "sink(s), same schema and rows (order-insensitive): "
                + ", ".join(f"`{s}`" for s in result.verify.sinks)
            )
        else:
            lines.append("**Different**:")
            lines += [f"- {d}" for d in result.verify.differences]
        if result.lint:
            lines += ["", "## ruff", ""] + [f"    {x}" for x in result.lint]
    if a.config:
        lines += ["", "## Configuration", ""]
        lines.append(
            "The script's own argument and config handling is kept; the pipeline takes the "
            f"script's command line from `$PYSETL_MIGRATE_ARGS_{a.name.upper()}` (unset: the "
            "defaults below)."
        )
        lines.append("")
        lines += [f"- {k}: `{v}`" for k, v in a.config.items()]
    if result.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in result.notes]
    return "\n".join(lines) + "\n"


def render_summary(results: list[FileResult]) -> str:
    """One line per file: Factories, sinks, verified or why not."""
    lines = [
        "# Migration summary",
        "",
        "| File | Factories | Sinks | Result |",
        "|---|---|---|---|",
    ]
    for r in results:
        units = [u for u in r.analysis.units if u.enabled] if r.analysis else []
        sinks = sum(1 for u in units if u.is_sink)
        lines.append(f"| {r.source.name} | {len(units)} | {sinks} | {r.verdict()} |")
    return "\n".join(lines) + "\n"
