r"""Per-token reward heat maps: a trace's text with each token's background coloured by its reward r_t.

Colour = RdBu(½ + r_t / (2·v)), clipped to the ends: red for r_t ≤ -v (the discriminator finds the prefix
policy-like), white at 0 (D = ½), blue for r_t ≥ +v (expert-like), with one scale v shared by the traces of a
section (the 98th percentile of |r_t|) so that colours compare across traces. Each step is one line; the true
first wrong step and the predicted one (first step scoring below τ, `rairl.inference.localize`) are marked.

Traces come from `rairl rerank`'s `scored.jsonl` (a sample's verdict `correct`, its `first_error` if the task
checks steps), `rairl localize`'s `predictions.jsonl` (label -1: correct, else the first wrong step) or a
`rairl score` output (a verdict when its input had one). Token values are the ones the command saved (`tokens`,
`token_rewards`; nothing is re-scored here); a row without them (written before commands saved them) has its steps
coloured by their saved `step_scores` instead.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field

import numpy as np
from matplotlib import colormaps

from rairl.io import DataError, read_jsonl, require
from rairl.scores import Span, first_below, joined_spans
from rairl.tasks.base import line_spans

COLORMAP = "RdBu"  # diverging: red = low reward, blue = high, white at 0
SCALE_QUANTILE = 0.98  # |r| beyond this quantile of a section takes the end colours (one outlier must not wash all out)
QUESTION_CHARS = 400


@dataclass
class Trace:
    """One response to show. `correct`: None when unknown; `true_error`/`predicted`: first wrong step, -1 none,
    None unknown."""

    id: str
    question: str
    prompt: str
    response: str
    step_spans: list[Span]
    step_scores: list[float]
    correct: bool | None
    true_error: int | None
    predicted: int | None
    scores: dict[str, float] = field(default_factory=dict)  # trace scores by method (`scored.jsonl`)
    likelihood_predicted: int | None = None  # the likelihood baseline's prediction (`predictions.jsonl`)
    details: dict[str, str] = field(default_factory=dict)
    token_values: list[float] | None = None  # the saved token rewards, when the file has them
    token_spans: list[Span] | None = None  # each token's span in `response` (EOS: zero-width at the end)


def _float_list(row: dict, name: str, path: str | os.PathLike, line: int) -> list[float]:
    values = require(row, name, path, line, list)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise DataError(path, line, name, "expected a list of numbers")
    return [float(v) for v in values]


def saved_token_rewards(
    row: dict, response: str, path: str | os.PathLike, line: int
) -> tuple[list[float] | None, list[Span] | None]:
    """The row's saved `token_rewards` and the span of each of its `tokens` in `response`, found left to right
    (whitespace a tokenizer's offsets leave out is skipped; a piece not found, such as EOS, is zero-width where
    the search stands); (None, None) when the row saved none."""
    if "token_rewards" not in row:
        return None, None
    values = _float_list(row, "token_rewards", path, line)
    tokens = require(row, "tokens", path, line, list)
    if len(tokens) != len(values) or not all(isinstance(t, str) for t in tokens):
        raise DataError(path, line, "tokens", f"expected {len(values)} strings (one per token reward)")
    spans, start = [], 0
    for piece in tokens:
        at = response.find(piece, start) if piece else -1
        if at < 0 or response[start:at].strip():
            spans.append((start, start))
            continue
        spans.append((at, at + len(piece)))
        start = at + len(piece)
    return values, spans


def read_scored(path: str | os.PathLike, tau: float) -> list[Trace]:
    """Traces of a `rairl rerank` `scored.jsonl` or a `rairl score` output; predicted first error = first step
    score below `tau`."""
    traces = []
    for line, row in read_jsonl(path):
        response = row.get("response")
        if not isinstance(response, str):
            raise DataError(path, line, "response", f"expected str, got {type(response).__name__}")
        prompt = require(row, "prompt", path, line, str)
        correct = row.get("correct")
        if correct is not None and not isinstance(correct, bool):
            raise DataError(path, line, "correct", f"expected true, false or none, got {correct!r}")
        steps = _float_list(row, "step_scores", path, line)
        first_error = row.get("first_error")
        scores = row.get("scores", row.get("trace_scores"))  # rerank: {method: value}; score: {aggregation: value}
        if not isinstance(scores, dict) or not all(isinstance(v, (int, float)) for v in scores.values()):
            raise DataError(path, line, "scores", "expected {method: number}")
        picked = row.get("picked_by")
        details = {"picked by": ", ".join(map(str, picked))} if isinstance(picked, list) and picked else {}
        values, spans = saved_token_rewards(row, response, path, line)
        traces.append(
            Trace(
                f"{row.get('id', line)}" + (f"/{row['sample']}" if "sample" in row else ""),
                str(row.get("question") or prompt),
                prompt,
                response,
                line_spans(response),
                steps,
                correct,
                first_error if isinstance(first_error, int) else None,
                first_below(steps, tau),
                {k: float(v) for k, v in scores.items()},
                details=details,
                token_values=values,
                token_spans=spans,
            )
        )
    return traces


def read_predictions(path: str | os.PathLike) -> list[Trace]:
    """Traces of a `rairl localize` `predictions.jsonl`: the steps joined by newlines, `label` the true error."""
    traces = []
    for line, row in read_jsonl(path):
        steps = require(row, "steps", path, line, list)
        if not all(isinstance(s, str) for s in steps):
            raise DataError(path, line, "steps", "expected a list of strings")
        prompt = require(row, "prompt", path, line, str)
        label = require(row, "label", path, line, int)
        predicted = require(row, "predicted", path, line, int)
        baseline = row.get("likelihood_predicted")
        details = {"perturbation": str(row["perturbation"])} if row.get("perturbation") else {}
        if isinstance(baseline, int):
            details["likelihood predicts"] = step_name(baseline)
        response = "\n".join(steps)
        values, spans = saved_token_rewards(row, response, path, line)
        traces.append(
            Trace(
                str(row.get("id", line)),
                prompt,
                prompt,
                response,
                joined_spans(steps),
                _float_list(row, "step_scores", path, line),
                label == -1,
                label,
                predicted,
                likelihood_predicted=baseline if isinstance(baseline, int) else None,
                details=details,
                token_values=values,
                token_spans=spans,
            )
        )
    return traces


def select(traces: list[Trace], n: int) -> list[Trace]:
    """Up to `n` correct traces, then up to `n` wrong ones, then up to `n` of unknown verdict, in file order; wrong
    traces whose true first error is known come first (deterministic: the same files give the same selection)."""
    correct = [t for t in traces if t.correct is True][:n]
    wrong = sorted((t for t in traces if t.correct is False), key=lambda t: t.true_error is None or t.true_error < 0)
    return correct + wrong[:n] + [t for t in traces if t.correct is None][:n]


def colour_scale(traces: list[Trace]) -> float:
    """v: the `SCALE_QUANTILE` quantile of |value| over the traces' shown values (tokens, else steps); > 0."""
    values = [abs(v) for t in traces for v in (t.token_values if t.token_values is not None else t.step_scores)]
    return max(float(np.quantile(values, SCALE_QUANTILE)), 1e-6) if values else 1.0


def colour(value: float, vmax: float) -> tuple[str, str]:
    """(background, text) hex colours of `value` on the symmetric scale [-vmax, vmax]."""
    x = min(max(0.5 + value / (2 * vmax), 0.0), 1.0)
    r, g, b, _ = colormaps[COLORMAP](x)
    luminance = 0.299 * r + 0.587 * g + 0.114 * b
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}", "#000" if luminance > 0.45 else "#fff"


def step_name(index: int | None) -> str:
    return "unknown" if index is None else "none" if index < 0 else f"step {index}"


def _coloured(text: str, value: float, vmax: float, cls: str = "tok") -> str:
    bg, fg = colour(value, vmax)
    return f'<span class="{cls}" style="background:{bg};color:{fg}" title="r = {value:.4g}">{html.escape(text)}</span>'


def _step_body(trace: Trace, k: int, vmax: float) -> str:
    """Step k's text: per token (the token's part inside the step) or, without token rewards, one colour."""
    a, b = trace.step_spans[k]
    if trace.token_values is None:
        if k >= len(trace.step_scores):
            return html.escape(trace.response[a:b])
        return _coloured(trace.response[a:b], trace.step_scores[k], vmax, "tok step-colour")
    parts = []
    for (s, e), value in zip(trace.token_spans, trace.token_values):
        lo, hi = max(s, a), min(e, b)
        if hi > lo:
            parts.append(_coloured(trace.response[lo:hi], value, vmax))
    return "".join(parts)


def render_trace(trace: Trace, index: int, vmax: float) -> str:
    """One heat map: a header (id, verdict, true and predicted first error, details) and one line per step."""
    verdict = {True: "correct", False: "wrong", None: "unchecked"}[trace.correct]
    question = trace.question if len(trace.question) <= QUESTION_CHARS else trace.question[:QUESTION_CHARS] + "…"
    facts = {"true first error": step_name(trace.true_error), "predicted": step_name(trace.predicted), **trace.details}
    header = " ".join(f'<span class="fact"><b>{html.escape(k)}</b> {html.escape(v)}</span>' for k, v in facts.items())
    lines = []
    for k in range(len(trace.step_spans)):
        marks = [("true", "true error")] if k == trace.true_error else []
        marks += [("pred", "predicted")] if k == trace.predicted else []
        cls = " ".join(["step", *(m for m, _ in marks)])
        badges = "".join(f'<span class="badge {m}">{label}</span>' for m, label in marks)
        lines.append(
            f'<div class="{cls}"><span class="step-no">{k}</span>'
            f'<span class="step-text">{_step_body(trace, k, vmax)}</span>{badges}</div>'
        )
    if trace.token_values is not None and trace.token_spans and trace.token_spans[-1][0] == len(trace.response):
        lines.append(
            f'<div class="step eos-line"><span class="step-no"></span>'
            f"{_coloured('EOS', trace.token_values[-1], vmax, 'tok eos')}</div>"
        )
    return (
        f'<div class="heatmap {verdict}" id="heatmap-{index}">'
        f'<div class="trace-head"><span class="verdict {verdict}">{verdict}</span>'
        f'<span class="trace-id">{html.escape(trace.id)}</span>{header}</div>'
        f'<div class="question">{html.escape(question)}</div>{"".join(lines)}</div>'
    )


def render_legend(vmax: float, what: str) -> str:
    """A colour bar from -vmax (red) through 0 (white) to +vmax (blue), labelled with `what` it colours."""
    stops = ", ".join(colour(v, vmax)[0] for v in np.linspace(-vmax, vmax, 11))
    return (
        f'<div class="legend"><span>{-vmax:.3g}</span><span class="bar" '
        f'style="background:linear-gradient(to right, {stops})"></span><span>+{vmax:.3g}</span>'
        f'<span class="legend-text">{html.escape(what)}: red = low (policy-like), white = 0 (D = ½), '
        f"blue = high (expert-like)</span></div>"
        '<div class="legend"><span class="badge true">true error</span> the first wrong step '
        '<span class="badge pred">predicted</span> the first step scoring below τ</div>'
    )
