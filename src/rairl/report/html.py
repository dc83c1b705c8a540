"""One self-contained HTML page of the outputs found in a run folder, at any depth (the `rairl report RUN_DIR`
command, `rairl.commands.report`).

Found by shape, each file once (`KINDS`, first match wins):

    rerank     metrics.json with "pass@k" and "select" (+ scored.jsonl)      `rairl rerank`
    localize   metrics.json with "reward": {"acc_error", ...} (+ predictions.jsonl)   `rairl localize`
    eval       metrics.json with "splits"                                      `rairl eval`
    search     metrics.json with "results" keyed method/scorer/N=n              `rairl search`
    demo       results.json with "training" or "claims"                        `rairl demo`
    metrics    any other metrics.json (its summaries are tabled)

Sections appear for what exists: per-token reward heat maps of selected correct and wrong traces, reward
distributions, pass@k with and without reranking, first-error confusion matrices, claims and metric tables
(mean, 95% CI, n). Figures are embedded as data URIs and saved in a folder beside the page
(`<page stem>_images/<name>.png`).
Everything else is read from what the runs saved. Token rewards are not saved (r_t per token would multiply
`scored.jsonl` by the trace length), so for the few traces a heat map shows (`--max_traces`) the page scores them
itself, with a saved reward model: `--reward_model`, else RUN_DIR/discriminator, else the first
`discriminator/` folder found, else the `reward_model` recorded in a metrics file's config; if none loads, steps
are coloured by their saved step scores and the page says so.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rairl.inference.scoring import resolve_device
from rairl.io import DataError, atomic_path, write_text
from rairl.report import heatmap, plots
from rairl.report.page import collapsible, figure_grid, page, summary_cell, summary_table, value_cell
from rairl.reward_model import RewardModel

logger = logging.getLogger(__name__)

DEFAULT_TAU = 0.0  # `rairl localize`'s default reward threshold (D = ½) for traces with no localize run beside them
FILES = ("metrics.json", "results.json")
TRACE_FILES = {"rerank": "scored.jsonl", "localize": "predictions.jsonl"}
KINDS: dict[str, Callable[[str, dict], bool]] = {
    "rerank": lambda name, d: name == "metrics.json" and "pass@k" in d and "select" in d,
    "localize": lambda name, d: (
        name == "metrics.json" and isinstance(d.get("reward"), dict) and "acc_error" in d["reward"]
    ),
    "eval": lambda name, d: name == "metrics.json" and isinstance(d.get("splits"), dict),
    "search": lambda name, d: (
        name == "metrics.json" and isinstance(d.get("results"), dict) and all("/N=" in k for k in d["results"])
    ),
    "demo": lambda name, d: name == "results.json" and ("training" in d or "claims" in d),
    "metrics": lambda name, d: name == "metrics.json",
}


@dataclass
class Config:
    run_dir: str = field(default="", metadata={"help": "run folder to report on (searched at any depth)"})
    reward_model: str | None = field(
        default=None, metadata={"help": "saved discriminator for token rewards (default: found in RUN_DIR)"}
    )
    output: str | None = field(default=None, metadata={"help": "HTML file to write (default: RUN_DIR/report.html)"})
    max_traces: int = field(default=3, metadata={"help": "heat maps: up to N correct and N wrong traces per file"})
    device: str = field(default="auto", metadata={"help": "'auto' (cuda when there is one), 'cpu', 'cuda', ..."})

    def __post_init__(self) -> None:
        if not self.run_dir:
            raise ValueError("RUN_DIR is required: `rairl report RUN_DIR` (a folder written by rairl commands)")
        if self.max_traces < 0:
            raise ValueError(f"max_traces must be >= 0 (0: no heat maps), got {self.max_traces}")


@dataclass
class Found:
    kind: str
    path: Path
    data: dict[str, Any]
    label: str  # the folder relative to RUN_DIR

    @property
    def traces(self) -> Path | None:
        """The traces file beside a rerank or localize metrics.json, when there is one."""
        if self.kind not in TRACE_FILES:
            return None
        path = self.path.parent / TRACE_FILES[self.kind]
        return path if path.is_file() else None


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(path, err.lineno, None, f"not valid JSON ({err.msg})") from None
    if not isinstance(data, dict):
        raise DataError(path, None, None, f"expected a JSON object, got {type(data).__name__}")
    return data


def discover(run_dir: Path) -> tuple[list[Found], list[Path]]:
    """The outputs under `run_dir` (folders and files in sorted order, hidden folders skipped) and the
    `discriminator/` folders seen."""
    found, discriminators = [], []
    for dirpath, dirnames, filenames in os.walk(run_dir):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        discriminators += [Path(dirpath) / d for d in dirnames if d == "discriminator"]
        for name in sorted(set(filenames) & set(FILES)):
            path = Path(dirpath) / name
            data = read_json(path)
            kind = next((k for k, matches in KINDS.items() if matches(name, data)), None)
            if kind is not None:
                label = path.parent.relative_to(run_dir).as_posix()
                found.append(Found(kind, path, data, run_dir.name if label == "." else label))
    return found, discriminators


def find_reward_model(config: Config, run_dir: Path, found: list[Found], discriminators: list[Path]):
    """(model or None, a sentence saying where token rewards come from)."""
    settings = next((f.data["config"] for f in found if f.kind in TRACE_FILES and "config" in f.data), {})
    options = dict(
        granularity=settings.get("granularity"),
        interval=settings.get("interval"),
        clip_beta=settings.get("reward_clip"),
    )
    if config.reward_model:
        candidates = [Path(config.reward_model)]
    else:
        recorded = [f.data.get("config", {}).get("reward_model") for f in found]
        recorded = [Path(p) for p in recorded if isinstance(p, str) and p]
        candidates = [run_dir / "discriminator", *discriminators, *recorded, *(run_dir / p for p in recorded)]
    tried = []
    for path in dict.fromkeys(candidates):
        if not path.is_dir():
            tried.append(str(path))
            continue
        try:
            model = RewardModel.from_pretrained(path, **options)
        except (OSError, ValueError, KeyError) as err:
            if config.reward_model:
                raise ValueError(f"--reward_model {path}: cannot load a saved discriminator ({err})") from None
            logger.warning("skipping %s: not a loadable reward model (%s)", path, err)
            tried.append(str(path))
            continue
        if model.max_length is None:  # score every position the discriminator has, as `rairl score` does
            positions = getattr(model.discriminator.config, "max_position_embeddings", None)
            model.settings = model.settings.override(max_length=positions)
        return model.to(resolve_device(config.device)), f"Token rewards r_t from the reward model {path}."
    if config.reward_model:
        raise FileNotFoundError(f"--reward_model {config.reward_model}: no such directory")
    return None, (
        "No reward model could be loaded (tried: "
        + (", ".join(tried) or "none found")
        + "): steps are coloured by their saved step scores instead of per token."
    )


class Figures:
    """PNGs of one page: embedded as data URIs and saved in a folder beside the page, `<stem>_images/<name>.png`."""

    def __init__(self, output: Path):
        self.output, self.files = output, {}
        self.folder = f"{output.stem}_images"

    def add(self, name: str, png: bytes, caption: str) -> str:
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "figure"
        filename, i = f"{self.folder}/{slug}.png", 1
        while filename in self.files:
            i += 1
            filename = f"{self.folder}/{slug}-{i}.png"
        self.files[filename] = png
        data = base64.b64encode(png).decode("ascii")
        return (
            f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)} <code>{html.escape(filename)}</code></figcaption></figure>"
        )

    def write(self) -> list[Path]:
        paths = []
        (self.output.parent / self.folder).mkdir(parents=True, exist_ok=True)
        for filename, png in self.files.items():
            with atomic_path(self.output.parent / filename) as tmp:
                tmp.write_bytes(png)
            paths.append(self.output.parent / filename)
        return paths


def best_method(select: dict[str, Any], prefix: str) -> str | None:
    """The `prefix*` selection method with the highest mean (the first on ties), or None."""
    names = [m for m, s in select.items() if m.startswith(prefix) and s.get("mean") is not None]
    return max(names, key=lambda m: select[m]["mean"]) if names else None


def localize_tau(found: list[Found], near: Path) -> float:
    """τ of the localize run nearest `near` (the longest shared folder path; the first on ties), else DEFAULT_TAU."""
    runs = [f for f in found if f.kind == "localize"]
    if not runs:
        return DEFAULT_TAU
    nearest = max(runs, key=lambda f: len(Path(os.path.commonpath([f.path.parent, near])).parts))
    return nearest.data["reward"]["threshold"]


def read_traces(f: Found, tau: float) -> list[heatmap.Trace]:
    return heatmap.read_scored(f.traces, tau) if f.kind == "rerank" else heatmap.read_predictions(f.traces)


def heatmap_section(sources: list[tuple[Found, list[heatmap.Trace]]], model, note: str, n: int) -> str:
    intro = (
        f"{note} Predicted first error: the first step whose reward falls below τ (of the nearest localize "
        f"run, else {DEFAULT_TAU:g}). Hover the coloured text for its value."
    )
    parts, index = [f"<p>{html.escape(intro)}</p>"], 0
    for f, traces in sources:
        chosen = heatmap.select(traces, n)
        step_reduce = (
            f.data.get("config", {}).get("step_reduce") if f.kind == "rerank" else f.data["reward"].get("step_reduce")
        )
        step_reduce = step_reduce or (model.step_reduce if model is not None else "last")
        if model is not None:
            heatmap.add_token_rewards(chosen, model, step_reduce)
        key = best_method(f.data.get("select", {}), "reward/")
        for t in chosen:
            if key in t.scores:
                t.details = {key: f"{t.scores[key]:.3f}", **t.details}
        vmax = heatmap.colour_scale(chosen)
        what = "token reward r_t" if model is not None else "step score"
        rendered = [heatmap.render_trace(t, index + i, vmax) for i, t in enumerate(chosen)]
        head = (
            f"{html.escape(f.label)} <small>{html.escape(f.traces.name)}: {len(chosen)} of {len(traces)} traces</small>"
        )
        is_open = len(sources) <= 2 or f is sources[0][0]  # a demo's many runs: the first open, the rest folded
        parts.append(collapsible(head, heatmap.render_legend(vmax, what) + "".join(rendered), is_open))
        index += len(chosen)
    return "".join(parts)


def distribution_section(sources: list[tuple[Found, list[heatmap.Trace]]], figures: Figures) -> str:
    parts = []
    for f, traces in sources:
        if f.kind == "rerank":
            key = best_method(f.data["select"], "reward/") or next(iter(traces[0].scores), None)
            if key is None:
                continue
            traces = [t for t in traces if key in t.scores]
            values, xlabel, tau = [t.scores[key] for t in traces], f"trace score {key}", None
            what = "samples: correct = the answer is right"
        else:
            values = [min(t.step_scores) if t.step_scores else 0.0 for t in traces]
            xlabel, tau = "lowest step score (flagged when below τ)", f.data["reward"]["threshold"]
            what = "labelled traces: correct = no wrong step"
        correct = [v for v, t in zip(values, traces) if t.correct]
        wrong = [v for v, t in zip(values, traces) if not t.correct]
        png = plots.reward_histogram(correct, wrong, xlabel, f.label, tau)
        parts.append(figures.add(f"reward-{f.label}", png, f"{f.label}: {xlabel} of {what}."))
    return figure_grid(parts)


def pass_at_k(summaries: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {int(name.split("@", 1)[1]): s for name, s in summaries.items() if name.startswith("pass@")}


def pass_k_section(found: list[Found], figures: Figures) -> str:
    parts = []
    reranks = [f for f in found if f.kind == "rerank"]
    for f in reranks:
        select = f.data["select"]
        lines = {f"{m}: 1 of N by the reward": select[m] for m in [best_method(select, "reward/")] if m}
        lines |= {f"{m}: 1 of N by the likelihood": select[m] for m in [best_method(select, "likelihood/")] if m}
        lines |= {"majority vote of N": select["majority"]} if "majority" in select else {}
        png = plots.pass_at_k_plot({"pass@k (no reranking)": pass_at_k(f.data["pass@k"])}, lines, f.label)
        parts.append(
            figures.add(
                f"passk-{f.label}",
                png,
                f"{f.label}: pass@k without reranking against one answer "
                "chosen from N (success@1|N, at the right); bars are 95% intervals.",
            )
        )
    for f in [] if reranks else [f for f in found if f.kind == "eval"]:
        splits = f.data["splits"]
        curves = {split: pass_at_k(m) for split, m in splits.items()}
        lines = {f"{split} greedy": m["greedy"] for split, m in splits.items() if "greedy" in m}
        png = plots.pass_at_k_plot(curves, lines, f.label)
        parts.append(figures.add(f"passk-{f.label}", png, f"{f.label}: pass@k per split with 95% intervals."))
    return figure_grid(parts)


def localisation_section(sources: list[tuple[Found, list[heatmap.Trace]]], found: list[Found], figures: Figures) -> str:
    parts, traces_of = [], {id(f): traces for f, traces in sources}
    for f in (f for f in found if f.kind == "localize"):
        d = f.data
        methods = [m for m in ("reward", "likelihood") if isinstance(d.get(m), dict)]
        rows = [
            [
                m,
                value_cell(d[m].get("threshold")),
                value_cell(d[m].get("calibrated")),
                *(summary_cell(d[m].get(k)) for k in ("acc_error", "acc_correct", "f1")),
            ]
            for m in methods
        ]
        facts = ", ".join(f"{k} = {d[k]}" for k in ("source", "n_traces", "n_error", "n_correct", "dropped") if k in d)
        parts.append(
            f"<h3>{html.escape(f.label)}</h3><p>{html.escape(facts)}</p>"
            + summary_table(["method", "τ", "calibrated", "acc_error", "acc_correct", "F1"], rows)
        )
        perturbations = list(dict.fromkeys(p for m in methods for p in d[m].get("by_perturbation") or {}))
        if perturbations:
            rows = [
                [p, *(summary_cell((d[m].get("by_perturbation") or {}).get(p)) for m in methods)] for p in perturbations
            ]
            parts.append("<p>acc_error by injected perturbation</p>" + summary_table(["perturbation", *methods], rows))
        traces = traces_of.get(id(f))
        if traces:
            true = [t.true_error for t in traces]
            matrices = {"reward": plots.confusion_matrix(true, [t.predicted for t in traces])}
            if all(t.likelihood_predicted is not None for t in traces):
                matrices["likelihood"] = plots.confusion_matrix(true, [t.likelihood_predicted for t in traces])
            parts.append(
                figures.add(
                    f"confusion-{f.label}",
                    plots.confusion_plot(matrices),
                    f"{f.label}: true (rows) vs predicted (columns) first wrong step.",
                )
            )
    return "".join(parts)


def flat_summaries(obj: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, summary) for every `{"mean", "ci95", ...}` dict nested in `obj` (configs skipped)."""
    if isinstance(obj, dict) and "mean" in obj and "ci95" in obj:
        yield "/".join(prefix), obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            if key != "config":
                yield from flat_summaries(value, (*prefix, str(key)))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from flat_summaries(value, (*prefix, str(i)))


def search_section(found: list[Found], figures: Figures) -> str:
    """`rairl search` runs: accuracy against tokens per question, one panel per run, a line per method and scorer."""
    panels: dict[str, dict[str, list]] = {}
    for f in (f for f in found if f.kind == "search"):
        lines = panels.setdefault(f"{f.label} ({f.data.get('split', '?')})", {})
        for key, m in f.data["results"].items():
            method, scorer, _ = key.split("/", 2)
            lines.setdefault(f"{method}, {scorer}", []).append((m["tokens_per_question"], m["accuracy"]))
    if not panels:
        return ""
    caption = "Accuracy against tokens generated per question (one point per N; bars are 95% intervals)."
    return figure_grid([figures.add("search", plots.search_plot(panels), caption)])


def claims_section(found: list[Found]) -> str:
    parts = []
    for f in (f for f in found if f.kind == "demo"):
        d = f.data
        facts = ", ".join(f"{k} = {json.dumps(d[k])}" for k in ("seeds", "wall_time_s") if k in d)
        parts.append(f"<h3>{html.escape(f.label)}</h3><p>{html.escape(facts)}</p>")
        claims = d.get("claims") or []
        if claims and all(isinstance(c, dict) for c in claims):
            columns = list(dict.fromkeys(k for c in claims for k in c))
            parts.append(summary_table(columns, [[value_cell(c.get(k)) for k in columns] for c in claims]))
        elif claims:
            parts.append("<ul>" + "".join(f"<li>{html.escape(str(c))}</li>" for c in claims) + "</ul>")
        training = d.get("training") or {}
        columns = list(
            dict.fromkeys(
                (split, metric)
                for by_split in training.values()
                if isinstance(by_split, dict)
                for split, ms in by_split.items()
                if isinstance(ms, dict)
                for metric in ms
            )
        )
        if columns:
            rows = [
                [method, *(summary_cell(by_split.get(s, {}).get(m)) for s, m in columns)]
                for method, by_split in training.items()
                if isinstance(by_split, dict)
            ]
            parts.append(
                "<p>Policy training: accuracy per method, split and metric</p>"
                + summary_table(["method", *(f"{s} {m}" for s, m in columns)], rows)
            )
    return "".join(parts)


def tables_section(found: list[Found], run_dir: Path) -> str:
    parts = []
    for f in found:
        rows = [[path, summary_cell(s)] for path, s in flat_summaries(f.data)]
        scalars = {k: v for k, v in f.data.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
        facts = ", ".join(f"{k} = {v}" for k, v in scalars.items())
        rel = f.path.relative_to(run_dir).as_posix()
        body = (f"<p>{html.escape(facts)}</p>" if facts else "") + (
            summary_table(["metric", "mean [95% CI] (n)"], rows) if rows else "<p>no summaries</p>"
        )
        parts.append(collapsible(f"{html.escape(rel)} <small>({f.kind})</small>", body, is_open=len(found) <= 3))
    return "".join(parts)


def render(config: Config) -> Path:
    """Write the page for `config.run_dir`; returns its path."""
    run_dir = Path(config.run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir}: no such directory")
    found, discriminators = discover(run_dir)
    if not found:
        raise FileNotFoundError(
            f"{run_dir}: found no rairl outputs at any depth (looked for metrics.json of `rairl rerank`, `localize`, "
            "`search` or `eval`, and a `rairl demo` results.json); point RUN_DIR at a folder that holds them"
        )
    output = Path(config.output) if config.output else run_dir / "report.html"
    sources = [(f, read_traces(f, localize_tau(found, f.path.parent))) for f in found if f.traces is not None]
    sources = [(f, traces) for f, traces in sources if traces]
    model, note = (
        find_reward_model(config, run_dir, found, discriminators) if sources and config.max_traces else (None, "")
    )
    figures = Figures(output)
    sections = {
        "Claims": claims_section(found),
        "Token reward heat maps": heatmap_section(sources, model, note, config.max_traces) if config.max_traces else "",
        "Reward distributions": distribution_section(sources, figures),
        "pass@k with and without reranking": pass_k_section(found, figures),
        "First-error localisation": localisation_section(sources, found, figures),
        "Reward-guided search": search_section(found, figures),
        "Metric tables": tables_section(found, run_dir),
    }
    listing = [(f.kind, f.path.relative_to(run_dir).as_posix()) for f in found]
    text = page(
        f"rairl report: {run_dir.resolve().name}",
        str(run_dir),
        listing,
        {title: body for title, body in sections.items() if body},
    )
    written = figures.write()
    write_text(output, text)
    logger.info(
        "wrote %s (%d sections, %d figures: %s)",
        output,
        sum(bool(b) for b in sections.values()),
        len(written),
        ", ".join(p.name for p in written),
    )
    return output
