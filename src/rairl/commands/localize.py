"""`rairl localize`: first-error localisation on labelled traces (library: `rairl.inference.localize`,
`rairl.inference.labelled`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rairl.inference.localize import LocalizeConfig, localize


@dataclass
class Config(LocalizeConfig):
    """`rairl localize`'s options (`rairl.inference.localize.LocalizeConfig`)."""


def run(config: Config) -> dict[str, Any]:
    report = localize(config)
    print(format_table(report, [name for name in ("reward", "likelihood", "reference") if name in report]))
    return report


def format_table(report: dict[str, Any], names: list[str]) -> str:
    lines = [
        f"{report['source']}: {report['n_error']} erroneous + {report['n_correct']} correct traces"
        f" ({report['dropped']} dropped)",
        f"{'method':<12} {'τ':>8}  {'acc_error':<24} {'acc_correct':<24} {'F1':<24} hit@1 / hit@k / MAP",
    ]
    for name in names:
        r = report[name]
        cells = []
        for key in ("acc_error", "acc_correct", "f1"):
            s = r[key]
            cells.append("-" if s["mean"] is None else f"{s['mean']:.3f} [{s['ci95'][0]:.3f}, {s['ci95'][1]:.3f}]")
        ranking = " / ".join("-" if r[k]["mean"] is None else f"{r[k]['mean']:.3f}" for k in r if k.startswith("hit@"))
        ranking += " / " + ("-" if r["map"]["mean"] is None else f"{r['map']['mean']:.3f}")
        lines.append(f"{name:<12} {r['threshold']:>8.3f}  {cells[0]:<24} {cells[1]:<24} {cells[2]:<24} {ranking}")
    return "\n".join(lines)
