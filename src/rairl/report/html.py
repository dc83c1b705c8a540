"""One self-contained HTML page of the outputs found in a run folder, at any depth (the `rairl report RUN_DIR`
command, `rairl.commands.report`).

The page renders what the commands saved and never loads a model: `rairl.report.outputs` finds the files (rerank,
localize, eval, search and score outputs, a demo's results.json), `rairl.report.sections` turns them into sections
(per-token reward heat maps from the `tokens`/`token_rewards` that `rairl rerank`, `localize` and `score` save,
reward distributions, pass@k with and without reranking, first-error confusion matrices, claims and metric tables
with mean, 95% CI and n) and `rairl.report.page` frames them. Figures are embedded as data URIs and saved in a
folder beside the page (`<page stem>_images/<name>.png`, `rairl.report.figures`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from rairl.io import write_text
from rairl.report import sections
from rairl.report.figures import Figures
from rairl.report.outputs import discover, read_traces
from rairl.report.page import page

logger = logging.getLogger(__name__)


@dataclass
class Config:
    run_dir: str = field(default="", metadata={"help": "run folder to report on (searched at any depth)"})
    output: str | None = field(default=None, metadata={"help": "HTML file to write (default: RUN_DIR/report.html)"})
    max_traces: int = field(default=3, metadata={"help": "heat maps: up to N correct and N wrong traces per file"})

    def __post_init__(self) -> None:
        if not self.run_dir:
            raise ValueError("RUN_DIR is required: `rairl report RUN_DIR` (a folder written by rairl commands)")
        if self.max_traces < 0:
            raise ValueError(f"max_traces must be >= 0 (0: no heat maps), got {self.max_traces}")


def render(config: Config) -> Path:
    """Write the page for `config.run_dir`; returns its path."""
    run_dir = Path(config.run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir}: no such directory")
    found = discover(run_dir)
    if not found:
        raise FileNotFoundError(
            f"{run_dir}: found no rairl outputs at any depth (looked for metrics.json of `rairl rerank`, `localize`, "
            "`search` or `eval`, a `rairl score` JSONL and a `rairl demo` results.json); point RUN_DIR at a folder "
            "that holds them"
        )
    output = Path(config.output) if config.output else run_dir / "report.html"
    sources = [(f, read_traces(f, found)) for f in found if f.traces is not None]
    sources = [(f, traces) for f, traces in sources if traces]
    figures = Figures(output)
    bodies = {
        "Claims": sections.claims_section(found),
        "Token reward heat maps": sections.heatmap_section(sources, config.max_traces) if config.max_traces else "",
        "Reward distributions": sections.distribution_section(sources, figures),
        "pass@k with and without reranking": sections.pass_k_section(found, figures),
        "First-error localisation": sections.localisation_section(sources, found, figures),
        "Reward-guided search": sections.search_section(found, figures),
        "Beyond the likelihood": sections.beyond_section(found),
        "Metric tables": sections.tables_section(found, run_dir),
        "Where it was measured": sections.environment_section(found),
    }
    listing = [(f.kind, f.path.relative_to(run_dir).as_posix()) for f in found]
    text = page(
        f"rairl report: {run_dir.resolve().name}",
        str(run_dir),
        listing,
        {title: body for title, body in bodies.items() if body},
    )
    written = figures.write()
    write_text(output, text)
    logger.info(
        "wrote %s (%d sections, %d figures: %s)",
        output,
        sum(bool(b) for b in bodies.values()),
        len(written),
        ", ".join(p.name for p in written),
    )
    return output
