"""A pipeline drawn as a Mermaid flowchart (shown on jobs, and per materialization in debug
mode)."""

from __future__ import annotations

from pysetl_dagster.translation.graph import FactoryNode
from pysetl_dagster.translation.specs import TranslatedPipeline


def mermaid_diagram(translated: TranslatedPipeline, highlight: FactoryNode | None = None) -> str:
    """The pipeline as a Mermaid flowchart: externals and Factories, grouped by Stage;
    `highlight` marks one Factory (the one a materialization is of)."""
    graph = translated.graph
    lines = ["flowchart LR"]
    ids: dict[object, str] = {}
    for i, ext in enumerate(graph.externals):
        ids[ext] = f"ext{i}"
        lines.append(f'  ext{i}[("{ext.name}")]')
    by_stage: dict[int | None, list[FactoryNode]] = {}
    for node in graph.nodes:
        by_stage.setdefault(node.stage_index, []).append(node)
    counter = 0
    for stage_index, nodes in by_stage.items():
        if stage_index is not None:
            lines.append(f'  subgraph stage{stage_index}["Stage {stage_index}"]')
        for node in nodes:
            ids[node] = f"f{counter}"
            key = translated.key_of(node).to_user_string()
            lines.append(f'    f{counter}["{node.name}<br/>{key}"]')
            counter += 1
        if stage_index is not None:
            lines.append("  end")
    for node in graph.nodes:
        for resolved in graph.inputs[node]:
            lines.append(f"  {ids[resolved.source]} -->|{resolved.attribute}| {ids[node]}")
    if highlight is not None and highlight in ids:
        lines.append(f"  style {ids[highlight]} stroke-width:3px,stroke:#f60")
    return "\n".join(lines)
