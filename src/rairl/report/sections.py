"""The page's sections, each a function of what `rairl.report.outputs` found (and the traces those files saved)
returning HTML, "" when there is nothing to show:

    claims                a demo's claims table and its policy-training accuracies
    heat maps             per-token rewards of a few correct and wrong traces per traces file, as saved
    reward distributions  trace scores (rerank) or lowest step scores (localize), correct against wrong
    pass@k                pass@k without reranking against one answer chosen of N (rerank, else eval)
    localisation          ProcessBench metrics and first-error confusion matrices (localize)
    search                accuracy against tokens per question (search)
    beyond the likelihood what the learned reward adds to the policy's likelihood: same picks, ρ, residual (DESIGN §2.6)
    metric tables         every mean [95% CI] (n) of every metrics file
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rairl.report import heatmap, plots
from rairl.report.figures import Figures
from rairl.report.outputs import DEFAULT_TAU, Found
from rairl.report.page import collapsible, figure_grid, summary_cell, summary_table, value_cell

Sources = list[tuple[Found, list[heatmap.Trace]]]  # the files that saved traces, with their traces
NO_TOKEN_REWARDS = (
    "No token rewards saved in this file (written before commands saved them): steps are coloured by their saved "
    "step scores."
)


def best_method(select: dict[str, Any], prefix: str) -> str | None:
    """The `prefix*` selection method with the highest mean (the first on ties), or None."""
    names = [m for m, s in select.items() if m.startswith(prefix) and s.get("mean") is not None]
    return max(names, key=lambda m: select[m]["mean"]) if names else None


def heatmap_section(sources: Sources, n: int) -> str:
    """Up to `n` correct, `n` wrong (and `n` unchecked) traces of each file, coloured by the token rewards the
    command saved; a file without them colours each step by its saved step score and says so."""
    intro = (
        "Token rewards as the commands saved them (tokens and token_rewards: r_t, or f_t = s_t + ℓ_t under score "
        "form f; rerank and localize keep 4 significant digits). Predicted first error: the first step whose score "
        f"falls below τ (of the nearest localize run, else {DEFAULT_TAU:g}). Hover the coloured text for its value."
    )
    parts, index = [f"<p>{html.escape(intro)}</p>"], 0
    for f, traces in sources:
        chosen = heatmap.select(traces, n)
        key = best_method(f.data.get("select", {}), "reward/")
        for t in chosen:
            if key in t.scores:
                t.details = {key: f"{t.scores[key]:.3f}", **t.details}
        vmax = heatmap.colour_scale(chosen)
        saved = all(t.token_values is not None for t in chosen)
        what = "token reward" if saved else "step score"
        note = "" if saved else f"<p class='muted'>{NO_TOKEN_REWARDS}</p>"
        rendered = [heatmap.render_trace(t, index + i, vmax) for i, t in enumerate(chosen)]
        head = (
            f"{html.escape(f.label)} <small>{html.escape(f.traces.name)}: {len(chosen)} of {len(traces)} traces</small>"
        )
        is_open = len(sources) <= 2 or f is sources[0][0]  # a demo's many runs: the first open, the rest folded
        parts.append(collapsible(head, note + heatmap.render_legend(vmax, what) + "".join(rendered), is_open))
        index += len(chosen)
    return "".join(parts)


def distribution_section(sources: Sources, figures: Figures) -> str:
    parts = []
    for f, traces in sources:
        if f.kind == "score":  # no verdicts to compare, in general
            continue
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
        wrong = [v for v, t in zip(values, traces) if t.correct is False]
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


def localisation_section(sources: Sources, found: list[Found], figures: Figures) -> str:
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


def environment_section(found: list[Found]) -> str:
    """Where each result was measured (`rairl.environment`): commit, CPU, cores, threads, library versions."""
    rows = []
    for f in found:
        env = f.data.get("environment")
        if not isinstance(env, dict):
            continue
        git = env.get("git") or {}
        commit = f"{(git.get('commit') or '?')[:10]}{' (dirty)' if git.get('dirty') else ''}"
        versions = ", ".join(f"{k} {v}" for k, v in (env.get("versions") or {}).items() if v)
        cores = f"{env.get('cpus_usable')} of {env.get('cpu_count')}"
        rows.append([f.label, commit, str(env.get("cpu")), cores, str(env.get("torch_threads")), versions])
    if not rows:
        return ""
    header = ["run", "commit", "CPU", "cores usable", "torch threads", "versions"]
    return summary_table(header, rows)


def beyond_section(found: list[Found]) -> str:
    """Per rerank or localize file: pick agreement with the likelihood and the residual, in words and in figures."""
    rows = []
    for f in found:
        if f.kind not in ("rerank", "localize") or not isinstance(f.data.get("residual"), dict):
            continue
        entries = f.data["residual"]
        entries = entries if f.kind == "rerank" else {"reward": entries}  # rerank: one entry per aggregation
        for name, r in entries.items():
            if isinstance(r, dict) and isinstance(r.get("summary"), str):
                gain = r.get("auc_gain")
                rows.append([f.label, name, r["summary"], summary_cell(gain)])
    if not rows:
        return ""
    intro = (
        "The learned reward against the policy's likelihood on the same traces: how often they pick alike, and the "
        "residual, the held-out AUC gain of [likelihood, reward] over the likelihood alone in predicting correctness "
        "(0 when the reward ranks as the likelihood does)."
    )
    return f"<p>{html.escape(intro)}</p>" + summary_table(["run", "reward", "in words", "residual AUC gain"], rows)


def tables_section(found: list[Found], run_dir: Path) -> str:
    parts, found = [], [f for f in found if f.kind != "score"]  # a score file has traces, no metrics
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
