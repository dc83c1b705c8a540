r"""What a learned reward adds beyond the policy's likelihood: do the two pick alike, do they rank alike, and what
does the reward predict of correctness that the likelihood does not (the *residual*)? (DESIGN §2.6)

Items come in groups — a question's N samples (reranking), or an erroneous trace's steps up to its first wrong one
(localisation) — and each item has a label y ∈ {0, 1} (correct) and three scores: the likelihood ℓ, the reward r,
and the reward's learned part s (r with the likelihood it adds back taken out; all of r for a reward that adds none):

    same pick        1[argmax_i r_i = argmax_i ℓ_i] per group (first index among ties, as `best_index` picks)
    spearman         ρ(rank r, rank ℓ) within a group (average ranks), averaged over the groups where both vary
    AUC              per group holding both labels: P(x_i > x_j | y_i = 1, y_j = 0), ties ½; averaged over groups
    residual         two logistic models of y on within-group-centred features x̃ = (x − mean_group x) / sd_fit,
                         M_ℓ :  P(y = 1) = σ(a + b ℓ̃)        M_ℓr :  P(y = 1) = σ(a + b ℓ̃ + c r̃)
                     fitted (IRLS, ridge λ on b, c) on one set of groups — validation data, or the other folds of
                     the same data (cross-fitting by group) — and read on held-out groups:
                         AUC gain      = AUC(b ℓ̃ + c r̃) − AUC(b ℓ̃) per group (AUC of M_ℓr − AUC of M_ℓ)
                         log-loss gain = mean_i [−log p_ℓ(y_i)] − mean_i [−log p_ℓr(y_i)] per group

Centring within the group asks what reranking asks (which of this question's samples is right), not which
questions are easy. Every figure is a `summarize` summary, its CI a bootstrap over groups. A reward that is a
monotone function of ℓ ranks as ℓ does: same pick on every group, ρ = 1, and no residual (the AUC gain is 0 for a
linear function, within noise of 0 otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from rairl.evaluation.metrics import summarize
from rairl.evaluation.selection import group_by_question
from rairl.scores import best_index

RIDGE = 1e-3  # λ on the slopes: keeps M_ℓr defined when r is an exact linear function of ℓ


@dataclass(frozen=True)
class Scored:
    """Grouped items with their labels and scores (one entry per item, `groups` indexes them)."""

    groups: list[list[int]]
    correct: np.ndarray  # (n,) bool
    likelihood: np.ndarray  # (n,)
    reward: np.ndarray  # (n,)
    learned: np.ndarray | None = None  # (n,), the reward's learned part

    def __post_init__(self) -> None:
        n = len(self.correct)
        for name in ("likelihood", "reward", "learned"):
            x = getattr(self, name)
            if x is not None and np.shape(x) != (n,):
                raise ValueError(f"{name} holds {np.shape(x)} scores for {n} items")
            if x is not None and not np.isfinite(x).all():
                raise ValueError(f"{name} holds non-finite scores at items {np.flatnonzero(~np.isfinite(x)).tolist()}")

    @classmethod
    def of(
        cls,
        groups: Sequence[Sequence[int]],
        correct: ArrayLike,
        likelihood: ArrayLike,
        reward: ArrayLike,
        learned: ArrayLike | None = None,
    ) -> Scored:
        """From plain sequences: verdicts as bool, scores as float (None where a score is absent)."""
        as_float = lambda x: None if x is None else np.asarray(x, dtype=float)  # noqa: E731
        return cls([list(g) for g in groups], np.asarray(correct, dtype=bool), as_float(likelihood),
                   as_float(reward), as_float(learned))  # fmt: skip


def pick_agreement(data: Scored) -> dict[str, Any]:
    """Same pick per group, and among the groups where the two picks differ in correctness, which was right."""
    same, reward_right, likelihood_right = [], 0, 0
    for idx in data.groups:
        r, ll = idx[best_index(data.reward[idx])], idx[best_index(data.likelihood[idx])]
        same.append(float(r == ll))
        if data.correct[r] != data.correct[ll]:
            reward_right += int(data.correct[r])
            likelihood_right += int(data.correct[ll])
    return {
        "same_pick": summarize(same),
        "differ_in_correctness": reward_right + likelihood_right,
        "reward_right": reward_right,
        "likelihood_right": likelihood_right,
    }


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean of their positions)."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x), dtype=float)
    for value in np.unique(x):
        tied = x == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's ρ of two score vectors; None when either is constant."""
    ra, rb = _ranks(np.asarray(a, dtype=float)), _ranks(np.asarray(b, dtype=float))
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def mean_spearman(data: Scored) -> dict[str, Any]:
    """ρ(reward, likelihood) per group (groups where both vary), summarised over groups."""
    values = [spearman(data.reward[idx], data.likelihood[idx]) for idx in data.groups if len(idx) > 1]
    return summarize([v for v in values if v is not None])


def group_auc(scores: np.ndarray, correct: np.ndarray) -> float | None:
    """P(score of a correct item > score of a wrong one), ties ½; None unless both labels occur."""
    pos, neg = scores[correct], scores[~correct]
    if not len(pos) or not len(neg):
        return None
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def _aucs(data: Scored, scores: np.ndarray) -> list[float | None]:
    return [group_auc(scores[idx], data.correct[idx]) for idx in data.groups]


def _centred(data: Scored, x: np.ndarray) -> np.ndarray:
    out = np.zeros(len(x))  # an item in no group stays 0 (`Scored.of` puts every item in one)
    for idx in data.groups:
        out[idx] = x[idx] - x[idx].mean()
    return out


def fit_logistic(features: np.ndarray, y: np.ndarray, ridge: float = RIDGE, iterations: int = 50) -> np.ndarray:
    """Weights (intercept first) of P(y = 1) = σ(w_0 + features · w_1:) by IRLS (Newton steps), ridge λ on w_1:.
    (n, k) features, (n,) labels -> (k + 1,) weights."""
    X = np.column_stack([np.ones(len(features)), features])
    penalty = ridge * np.eye(X.shape[1])
    penalty[0, 0] = 0.0
    w = np.zeros(X.shape[1])
    for _ in range(iterations):
        p = 0.5 * (1.0 + np.tanh(0.5 * (X @ w)))  # σ(z), without overflow for large |z|
        hessian = X.T @ (X * (p * (1 - p))[:, None]) + penalty + 1e-9 * np.eye(X.shape[1])
        step = np.linalg.solve(hessian, X.T @ (y - p) - penalty @ w)
        w += step
        if np.abs(step).max() < 1e-10:
            break
    return w


def _features(data: Scored, names: Sequence[str], scale: dict[str, float]) -> np.ndarray:
    return np.column_stack([_centred(data, getattr(data, n)) / scale[n] for n in names])


def _scales(data: Scored) -> dict[str, float]:
    return {n: float(_centred(data, getattr(data, n)).std()) or 1.0 for n in ("likelihood", "reward")}


def _log_loss(data: Scored, w: np.ndarray, features: np.ndarray) -> list[float]:
    z = w[0] + features @ w[1:]
    loss = np.logaddexp(0.0, -z) * data.correct + np.logaddexp(0.0, z) * ~data.correct  # −log p(y)
    return [float(loss[idx].mean()) for idx in data.groups]


def _held_out(fit: Scored, read: Scored) -> dict[str, Any]:
    """Fit M_ℓ and M_ℓr on `fit`, read them on `read`: per-group AUCs and log-losses, and the weights."""
    scale = _scales(fit)
    out: dict[str, Any] = {"aucs": {}, "losses": {}, "weights": {}}
    for name, features in (("likelihood", ("likelihood",)), ("combined", ("likelihood", "reward"))):
        w = fit_logistic(_features(fit, features, scale), fit.correct.astype(float))
        x = _features(read, features, scale)
        out["weights"][name] = w.tolist()
        out["losses"][name] = _log_loss(read, w, x)
        out["aucs"][name] = _aucs(read, x @ w[1:])
    return out


def _folds(data: Scored, k: int) -> list[tuple[Scored, Scored, list[int]]]:
    """(fit, read, read's group positions) for k folds of the groups (every k-th group held out)."""
    out = []
    for fold in range(k):
        held = [g for g in range(len(data.groups)) if g % k == fold]
        kept = [g for g in range(len(data.groups)) if g % k != fold]
        out.append((_subset(data, kept), _subset(data, held), held))
    return out


def _subset(data: Scored, positions: list[int]) -> Scored:
    items = [i for g in positions for i in data.groups[g]]
    where = {item: j for j, item in enumerate(items)}
    groups = [[where[i] for i in data.groups[g]] for g in positions]
    take = lambda x: None if x is None else x[items]  # noqa: E731
    return Scored(groups, data.correct[items], data.likelihood[items], data.reward[items], take(data.learned))


def residual(read: Scored, fit: Scored | None = None, folds: int = 2) -> dict[str, Any]:
    """The residual of the reward beyond the likelihood on `read` (module docstring): fitted on `fit` (validation
    data) when given, else cross-fitted over `folds` folds of `read`'s groups. AUCs of the likelihood, the reward and
    its learned part alone; the held-out AUC gain and log-loss gain of M_ℓr over M_ℓ, each with its CI."""
    if fit is not None:
        parts, how = [(fit, read, list(range(len(read.groups))))], f"fitted on {len(fit.groups)} validation groups"
    else:
        parts, how = _folds(read, folds), f"cross-fitted over {folds} folds of the groups"
    n = len(read.groups)
    plain = {name: [v for v in _aucs(read, getattr(read, name)) if v is not None]
             for name in ("likelihood", "reward", "learned") if getattr(read, name) is not None}  # fmt: skip
    out: dict[str, Any] = {"fit": how, "groups": n, "auc": {name: summarize(v) for name, v in plain.items()}}
    if any(part.correct.all() or not part.correct.any() for part, _, _ in parts):
        empty = summarize([])
        note = "not fitted: the data it is fitted on holds only correct or only wrong items"
        return {**out, "groups_with_both_labels": 0, "auc_gain": empty, "log_loss_gain": empty, "note": note}
    aucs: dict[str, list[float | None]] = {"likelihood": [None] * n, "combined": [None] * n}
    losses: dict[str, list[float]] = {"likelihood": [0.0] * n, "combined": [0.0] * n}
    weights = []
    for fit_part, read_part, positions in parts:
        held = _held_out(fit_part, read_part)
        weights.append(held["weights"]["combined"])
        for name in aucs:
            for j, g in enumerate(positions):
                aucs[name][g], losses[name][g] = held["aucs"][name][j], held["losses"][name][j]
    both = [(c, ll) for c, ll in zip(aucs["combined"], aucs["likelihood"]) if c is not None]
    return {
        **out,
        "groups_with_both_labels": len(both),
        "auc_gain": summarize([c - ll for c, ll in both]),
        "log_loss_gain": summarize([a - b for a, b in zip(losses["likelihood"], losses["combined"])]),
        "weights_combined": weights,  # [a, b, c] per fitted model: c ≈ 0 when r adds nothing
    }


def step_items(
    labels: Sequence[int],
    likelihood: Sequence[Sequence[float]],
    reward: Sequence[Sequence[float]],
    learned: Sequence[Sequence[float]] | None = None,
) -> Scored:
    """Localisation as grouped items: each erroneous trace's steps up to its first wrong one (label y), the steps
    before it correct and step y wrong, scored by their step scores (a trace with no error adds no group)."""
    groups, correct, cols = [], [], {"likelihood": [], "reward": [], "learned": []}
    for t, label in enumerate(labels):
        if label < 0:
            continue
        groups.append(list(range(len(correct), len(correct) + label + 1)))
        correct += [True] * label + [False]
        for name, steps in (("likelihood", likelihood), ("reward", reward), ("learned", learned)):
            if steps is not None:
                cols[name] += list(steps[t][: label + 1])
    learned_column = cols["learned"] if learned is not None else None
    return Scored.of(groups, correct, cols["likelihood"], cols["reward"], learned_column)


def prediction_agreement(
    labels: Sequence[int],
    reward: Sequence[int],
    likelihood: Sequence[int],
    reward_steps: Sequence[Sequence[float]],
    likelihood_steps: Sequence[Sequence[float]],
) -> dict[str, Any]:
    """Localisation's agreement: the same predicted first error per trace; among the traces where exactly one of the
    two predictions is right, which; ρ of the step scores within a trace (traces whose steps vary in both)."""
    same = [float(r == ll) for r, ll in zip(reward, likelihood)]
    reward_right = sum(r == y != ll for y, r, ll in zip(labels, reward, likelihood))
    likelihood_right = sum(ll == y != r for y, r, ll in zip(labels, reward, likelihood))
    rhos = [spearman(np.asarray(a), np.asarray(b)) for a, b in zip(reward_steps, likelihood_steps) if len(a) > 1]
    return {
        "same_prediction": summarize(same),
        "differ_in_correctness": reward_right + likelihood_right,
        "reward_right": reward_right,
        "likelihood_right": likelihood_right,
        "spearman": summarize([v for v in rhos if v is not None]),
    }


def paired_likelihood(reward_name: str, names: Sequence[str]) -> str:
    """The likelihood aggregation a reward aggregation is compared with: the same one where the likelihood has it
    (reward/min against likelihood/min: what the learned part changes), else the mean."""
    agg = reward_name.split("/", 1)[1]
    return f"likelihood/{agg}" if f"likelihood/{agg}" in names else "likelihood/mean"


def as_scored(rows: list[dict[str, Any]], scores: dict[str, np.ndarray], reward: str) -> Scored:
    """One reward aggregation against its likelihood (`paired_likelihood`), grouped by question."""
    return Scored.of(
        list(group_by_question(rows).values()),
        [r["correct"] for r in rows],
        scores[paired_likelihood(reward, list(scores))],
        scores[reward],
        scores[reward.replace("reward/", "learned/", 1)],
    )


def label_figures(reward: Sequence[float], learned: Sequence[float], correct: Sequence[bool | None]) -> dict[str, Any]:
    """A reward server's figures for one request that carries labels: each trace's verdict (None: not checkable),
    and over the request's checkable traces the AUC of the reward and of its learned part against correctness
    (None unless both verdicts occur)."""
    known = [i for i, c in enumerate(correct) if c is not None]
    c = np.array([bool(correct[i]) for i in known])
    auc = lambda x: group_auc(np.asarray(x, dtype=float)[known], c) if known else None  # noqa: E731
    return {"correct": list(correct), "auc/reward": auc(reward), "auc/learned": auc(learned)}


def beyond_likelihood(read: Scored, fit: Scored | None = None) -> dict[str, Any]:
    """Pick agreement, rank correlation and residual of a reward against the likelihood, in one dict."""
    return {"agreement": {**pick_agreement(read), "spearman": mean_spearman(read)}, "residual": residual(read, fit)}


def describe(figures: dict[str, Any]) -> str:
    """One line in plain words: how alike the reward and the likelihood pick, and what the reward adds."""
    a, r = figures["agreement"], figures["residual"]
    same, gain = a.get("same_pick") or a["same_prediction"], r["auc_gain"]
    rho = "-" if a["spearman"]["mean"] is None else f"{a['spearman']['mean']:.2f}"
    what = "pick" if "same_pick" in a else "predicted first error"
    share = "-" if same["mean"] is None else f"{100 * same['mean']:.0f}%"
    text = f"same {what} as the likelihood on {share} of {same['n']} (ρ {rho})"
    if gain["mean"] is None:
        return text + "; residual: " + r.get("note", "no group holds both correct and wrong items")
    lo, hi = gain["ci95"]
    verdict = (
        "adds to the likelihood" if lo > 0 else "adds nothing measurable" if hi >= 0 else "the fit reads worse than ℓ"
    )
    return text + f"; residual AUC gain {gain['mean']:+.3f} [{lo:+.3f}, {hi:+.3f}]: {verdict}"
