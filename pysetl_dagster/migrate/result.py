"""What happened to one source file: the one record engine, report and command line share."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .analysis import Analysis
from .findings import Finding
from .verify import VerifyResult


@dataclass
class FileResult:
    """What happened to one source file."""

    source: Path
    name: str
    status: str  # "migrated" | "reported" | "error" | "module" (imported by a driver)
    analysis: Analysis | None = None
    mode: str = "split"  # "split": Factories per unit | "whole": the script as one Factory
    why_whole: str = ""
    findings: list[Finding] = field(default_factory=list)
    reasons: list[tuple[str, str]] = field(default_factory=list)  # (where, why): reported
    argv: list[str] = field(default_factory=list)
    source_notes: list[str] = field(default_factory=list)  # true whatever the mode
    code: str = ""
    error: str = ""
    notes: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # path relative to OUT -> text
    lint: list[str] = field(default_factory=list)
    verify: VerifyResult | None = None

    def go_whole(self, why: str) -> None:
        """The script becomes one Factory: notes about the split no longer apply."""
        self.mode, self.why_whole = "whole", why
        self.notes = list(self.source_notes)

    @property
    def migratable(self) -> bool:
        return self.status == "migrated"

    def verdict(self) -> str:
        if self.status == "error":
            return self.error
        if self.status == "module":
            return f"not migrated on its own: {self.error}"
        if self.status == "reported":
            assert self.analysis is not None
            if self.reasons:
                where, why = self.reasons[0]
                return f"not migrated: {where}: {why}"
            first = self.analysis.problems[0]
            return f"not migrated: {self.analysis.where(first.line)}: {first.reason}"
        if self.verify is None:
            return "not verified (run with --verify)"
        return ("verified: " if self.verify.equal else "DIFFERENT: ") + self.verify.summary()
