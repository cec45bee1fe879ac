"""Cross-pipeline links: one pipeline's external input is another pipeline's Factory output.

    retail = pysetl_pipeline(build_retail(), name="retail")
    returns_pipeline.set_input_from_deliverable(retail.output(EnrichedOrders))
    returns = pysetl_pipeline(returns_pipeline, name="returns")
    defs = build_definitions(retail, returns)

The downstream Factory then depends on the upstream pipeline's asset key (no duplicate asset,
one lineage graph in the UI) and, when it runs, reads the stored current version of that asset
through the IO manager, in the asset job and the Stage job alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dagster import AssetKey, AssetSpec

from pysetl_dagster.translation.graph import ExternalInput


@dataclass(frozen=True)
class UpstreamAsset:
    """The payload of a linked input: which pipeline's Factory produces it, and its asset key."""

    pipeline: str
    factory: str
    key: AssetKey

    def __repr__(self) -> str:
        return f"UpstreamAsset({self.key.to_user_string()!r} of pipeline {self.pipeline!r})"


def link_of(external: ExternalInput) -> UpstreamAsset | None:
    payload = external.payload
    return payload if isinstance(payload, UpstreamAsset) else None


def link_spec(external: ExternalInput) -> AssetSpec | None:
    """The spec a linked input stands for: just the upstream key (the upstream pipeline owns
    the asset; this pipeline only depends on it)."""
    link = link_of(external)
    return AssetSpec(key=link.key) if link is not None else None


def without_links(values: Mapping[str, Any]) -> dict[str, Any]:
    return {a: v for a, v in values.items() if not isinstance(v, UpstreamAsset)}


def missing_links(
    pipelines: Mapping[str, Any], defined: set[AssetKey]
) -> list[tuple[str, UpstreamAsset]]:
    """Linked inputs whose upstream asset no pipeline of the Definitions defines."""
    missing = []
    for name, translated in pipelines.items():
        for ext in translated.graph.externals:
            link = link_of(ext)
            if link is not None and link.key not in defined:
                missing.append((name, link))
    return missing
