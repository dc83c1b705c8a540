"""The report's figures as PNG bytes (matplotlib, Agg backend: no display needed).

- reward histogram: trace scores of correct vs wrong traces, with the localisation threshold τ when given;
- pass@k curves: pass@k against k with 95% intervals as error bars, and the methods that submit one answer chosen
  from N (success@1|N of reranking, majority vote) as horizontal lines, their intervals as bars at the right end;
- confusion of the first wrong step: rows the true step ("none" = correct trace), columns the predicted one;
- search: accuracy against tokens generated per question, one line per search method and scorer (points at each N).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never open a window (headless machines, tests)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

MAX_STEP_BINS = 8  # steps >= this share one confusion row/column ("≥8"), so long traces keep the matrix readable
CORRECT, WRONG = "#2b6cb0", "#c53030"


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes (no timestamp metadata: the same data gives the same file); closes it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def reward_histogram(
    correct: Sequence[float], wrong: Sequence[float], xlabel: str, title: str, threshold: float | None = None
) -> bytes:
    """Overlaid density histograms of the scores of correct and wrong traces (shared bins)."""
    values = np.asarray([*correct, *wrong], dtype=float)
    if len(values) == 0:
        raise ValueError("reward_histogram needs at least one score")
    bins = np.histogram_bin_edges(values, bins=min(30, max(5, len(values) // 4)))
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for scores, name, col in ((correct, "correct", CORRECT), (wrong, "wrong", WRONG)):
        if len(scores):
            ax.hist(scores, bins=bins, alpha=0.55, color=col, label=f"{name} (n={len(scores)})", density=True)
    if threshold is not None:
        ax.axvline(threshold, color="#333", linestyle="--", linewidth=1, label=f"τ = {threshold:.3g}")
    ax.set(xlabel=xlabel, ylabel="density", title=title)
    ax.legend(frameon=False, fontsize=8)
    ax.grid(alpha=0.25)
    return png_bytes(fig)


def _yerr(summaries: Sequence[dict[str, Any]]) -> np.ndarray:
    """(2, n) distances from each mean to its interval ends (0 where an interval, or one of its ends, is missing)."""
    ends = [(s.get("ci95") or [None, None])[:2] for s in summaries]
    return np.array(
        [
            [
                max(s["mean"] - (lo if lo is not None else s["mean"]), 0.0),
                max((hi if hi is not None else s["mean"]) - s["mean"], 0.0),
            ]
            for s, (lo, hi) in zip(summaries, ends)
        ]
    ).T


def pass_at_k_plot(curves: dict[str, dict[int, dict[str, Any]]], lines: dict[str, dict[str, Any]], title: str) -> bytes:
    """`curves[label][k]` and `lines[label]`: `{"mean", "ci95", "n"}` summaries; entries without a mean are skipped."""
    ks_all = [k for by_k in curves.values() for k, s in by_k.items() if s.get("mean") is not None]
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for i, (label, by_k) in enumerate(curves.items()):
        points = sorted((k, s) for k, s in by_k.items() if s.get("mean") is not None)
        if not points:
            continue
        ks, summaries = zip(*points)
        ax.errorbar(
            ks, [s["mean"] for s in summaries], yerr=_yerr(summaries), marker="o", capsize=3, label=label, color=f"C{i}"
        )
    # One answer chosen from N: a horizontal line, its interval as an error bar at the right end (staggered).
    styles, right = ["--", ":", "-.", (0, (5, 1))], max(ks_all, default=1)
    for j, (label, s) in enumerate(lines.items()):
        if s.get("mean") is None:
            continue
        col = f"C{len(curves) + j}"
        ax.axhline(s["mean"], color=col, linestyle=styles[j % len(styles)], linewidth=1.4)
        ax.errorbar(
            [right * 1.06 ** (j + 1)],
            [s["mean"]],
            yerr=_yerr([s]),
            color=col,
            marker="s",
            markersize=4,
            capsize=3,
            linestyle=styles[j % len(styles)],
            label=label,
        )
    if ks_all:
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(set(ks_all)), [str(k) for k in sorted(set(ks_all))])
    ax.set(xlabel="k (samples)", ylabel="accuracy", title=title, ylim=(-0.02, 1.02))
    ax.legend(frameon=False, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    ax.grid(alpha=0.25)
    return png_bytes(fig)


def search_plot(panels: dict[str, dict[str, list[tuple[float, dict[str, Any]]]]]) -> bytes:
    """One panel per `panels` key (a split); in each, `panels[split][label]` = [(tokens per question, accuracy
    summary), ...] as a line with 95% intervals: solid for the learned reward, dashed for the likelihood."""
    markers = {"best_of_n": "o", "beam": "s", "dvts": "^"}
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.2), squeeze=False)
    for ax, (title, lines) in zip(axes[0], panels.items()):
        for label, points in lines.items():
            points = sorted((x, s) for x, s in points if s.get("mean") is not None)
            if not points:
                continue
            xs, summaries = zip(*points)
            method, _, scorer = label.partition(", ")
            style = markers.get(method, "o") + ("--" if scorer == "likelihood" else "-")
            ax.errorbar(xs, [s["mean"] for s in summaries], yerr=_yerr(summaries), fmt=style, capsize=2, label=label)
        ax.set_xscale("log", base=2)
        ax.set(xlabel="tokens generated per question", ylabel="accuracy (95% CI)", title=title)
        ax.grid(alpha=0.25)
        ax.legend(frameon=False, fontsize=7)
    fig.tight_layout()
    return png_bytes(fig)


def step_bin(step: int) -> int:
    """Row/column of a first-error step: 0 = none (-1), 1 + step, steps >= MAX_STEP_BINS share the last."""
    return 0 if step < 0 else 1 + min(step, MAX_STEP_BINS)


def confusion_matrix(true: Sequence[int], predicted: Sequence[int]) -> tuple[list[str], np.ndarray]:
    """(labels, counts (L, L)): counts[i, j] = traces whose true first error is bin i and predicted bin j.

    Bins: "none", "0", "1", ... up to the largest step seen (steps >= MAX_STEP_BINS as one bin "≥MAX_STEP_BINS").
    """
    if len(true) != len(predicted):
        raise ValueError(f"need one prediction per trace, got {len(predicted)} for {len(true)}")
    size = 1 + max([0, *(step_bin(s) for s in [*true, *predicted])])
    labels = ["none"] + [str(s) for s in range(size - 1)]
    if size - 1 > MAX_STEP_BINS:
        labels[-1] = f"≥{MAX_STEP_BINS}"
    counts = np.zeros((size, size), dtype=int)
    for t, p in zip(true, predicted):
        counts[step_bin(t), step_bin(p)] += 1
    return labels, counts


def confusion_plot(matrices: dict[str, tuple[list[str], np.ndarray]]) -> bytes:
    """One panel per method: the count matrix as an image, each cell's count written in it."""
    fig, axes = plt.subplots(1, len(matrices), figsize=(4.2 * len(matrices), 3.9), squeeze=False)
    for ax, (name, (labels, counts)) in zip(axes[0], matrices.items()):
        ax.imshow(counts, cmap="Blues", vmin=0, vmax=max(1, counts.max()))
        ax.set_xticks(range(len(labels)), labels, fontsize=8)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        for i, j in zip(*np.nonzero(counts)):
            dark = counts[i, j] > 0.6 * counts.max()
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8, color="white" if dark else "black")
        acc = np.trace(counts) / max(1, counts.sum())
        ax.set(xlabel="predicted first error", ylabel="true first error", title=f"{name} (exact: {acc:.0%})")
    fig.tight_layout()
    return png_bytes(fig)
