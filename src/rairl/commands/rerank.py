"""`rairl rerank`: best-of-N reranking of `rairl sample` output by the learned reward (library:
`rairl.inference.rerank`, `rairl.evaluation.selection`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rairl.inference.rerank import RerankConfig, rerank


def format_table(metrics: dict[str, Any]) -> str:
    def cell(s: dict[str, Any], signed: bool = False) -> str:
        if s["mean"] is None:
            return f"{'-':>7} {'':<17}"
        sign = "+" if signed else ""
        return f"{s['mean']:{sign}7.3f} [{s['ci95'][0]:{sign}.3f}, {s['ci95'][1]:{sign}.3f}]"

    lines = [f"{'method':<22} {'mean':>7} {'95% CI':<17}  {'gain vs pass@1':<26} {'n':>5}"]
    for name, s in metrics["pass@k"].items():
        lines.append(f"{name:<22} {cell(s)}  {'':<26} {s['n']:>5}")
    for name, s in metrics["select"].items():
        lines.append(f"{name:<22} {cell(s)}  {cell(metrics['gain'][name], signed=True):<26} {s['n']:>5}")
    return "\n".join(lines)


@dataclass
class Config(RerankConfig):
    """`rairl rerank`'s options (`rairl.inference.rerank.RerankConfig`)."""


def run(config: Config) -> dict[str, Any]:
    report = rerank(config)
    print(format_table(report))
    return report
