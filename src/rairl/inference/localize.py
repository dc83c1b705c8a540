r"""Predict the first wrong step of a trace from step scores (DESIGN §2.3); `rairl localize` runs
`localize`.

    ŷ = min{k : score_k < τ}   (-1 when no step falls below τ)

Learned reward: score_k = the step's value (`step_reduce` "last": at its last token; "min": its worst token; the
default follows the reward's score form: "min" for f = s + ℓ, "last" for the logit s), τ = 0 by default (D = 1/2: the
discriminator finds the prefix more likely policy than expert). Base-policy likelihood baseline (`--policy`): score_k
= min of ℓ_t = log π(y_t | x, y_<t) over the step's tokens, τ = log 0.1 by default (a token the policy gives less than
10%). `--calibrate` sets each τ to the value maximising F1 on a validation benchmark built the same way from another
split / file / seed (`--val_*`), never on the test traces. Metrics as ProcessBench: accuracy on erroneous traces
(exact step), on correct traces (no flag), F1, with 95% CIs. With `--policy`, what the reward adds beyond the
likelihood (DESIGN §2.6): `agreement` (the same predicted first error) and `residual` (does the reward tell an
erroneous trace's first wrong step from the correct steps before it better than ℓ does, held out;
`rairl.evaluation.residual`). With `--reference_model` (a PRM trained on step labels, `rairl prm`), a third
scorer: the labelled reference the learned reward is read against (DESIGN §2.7), its threshold `--reference_tau`
(calibrated as the others with `--calibrate`), and with `--policy` its own agreement and residual beyond the
likelihood (`reference_agreement`, `reference_residual`). Labelled traces come from `rairl.inference.labelled`
(injected | natural | file).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from transformers import set_seed

from rairl.config import config_dict
from rairl.evaluation.error_ranking import ranking_metrics
from rairl.evaluation.metrics import summarize
from rairl.evaluation.processbench import NO_ERROR, LabelledTrace, f1, processbench_metrics
from rairl.evaluation.residual import describe, prediction_agreement, residual, step_items
from rairl.inference.labelled import SOURCES, Benchmark, SourceSpec, build, joined
from rairl.inference.likelihood import DEFAULT_LOGPROB_THRESHOLD, LikelihoodScorer
from rairl.inference.scoring import (
    DISPLAY_DIGITS,
    RewardArgs,
    load_reference_model,
    load_reward_model,
    resolve_device,
    token_fields,
)
from rairl.io import write_json, write_jsonl
from rairl.rewards.perturb import PERTURBATIONS
from rairl.scores import NonFiniteScore, TraceScores, joined_spans, predict
from rairl.tasks import TaskArgs, get_task

logger = logging.getLogger(__name__)

MAX_CANDIDATES = 4096  # thresholds tried by calibration (quantiles beyond that)


def calibrate_threshold(step_scores: list[list[float]], labels: list[int]) -> tuple[float, float]:
    """(τ, F1): the threshold that maximises ProcessBench F1 of `predict(step_scores, τ)` on labelled traces.

    Candidates: midpoints between consecutive distinct step scores, and one above the largest (flag step 0
    everywhere); the lowest τ wins a tie. Both classes (erroneous and correct traces) must be present.
    """
    labels_arr = np.asarray(labels)
    n_correct = int((labels_arr == NO_ERROR).sum())
    if n_correct in (0, len(labels_arr)):
        raise ValueError(
            f"calibration needs both erroneous and correct traces; the validation benchmark has "
            f"{len(labels_arr) - n_correct} erroneous and {n_correct} correct: use a larger or another validation set"
        )
    width = max(len(s) for s in step_scores)
    mat = np.full((len(step_scores), width), np.inf)  # (M, S), +inf pads: never below a threshold
    for i, steps in enumerate(step_scores):
        mat[i, : len(steps)] = steps
    values = np.unique(mat[np.isfinite(mat)])
    if len(values) > MAX_CANDIDATES:
        values = np.unique(np.quantile(values, np.linspace(0, 1, MAX_CANDIDATES)))
    candidates = np.concatenate([(values[:-1] + values[1:]) / 2, values[-1:] + 1.0])
    wrong, right = labels_arr != NO_ERROR, labels_arr == NO_ERROR
    best = (float(candidates[-1]), -1.0)
    for tau in candidates:
        below = mat < tau  # (M, S)
        pred = np.where(below.any(1), below.argmax(1), NO_ERROR)
        score = f1(float((pred[wrong] == labels_arr[wrong]).mean()), float((pred[right] == NO_ERROR).mean()))
        if score > best[1]:
            best = (float(tau), score)
    return best


def score_labelled(scorer, traces: list[LabelledTrace], step_reduce: str, where: str) -> dict[str, TraceScores]:
    """Token and step scores of labelled traces (steps joined by newlines, spans exact), of every part the scorer
    tells apart (`score_parts`: "value", and "learned" for a reward model); NaN raises naming the trace."""
    try:
        scored = scorer.score_parts(
            [t.meta["prompt"] for t in traces],
            [joined(t) for t in traces],
            aggregates=(),
            step_spans=[joined_spans(t.steps) for t in traces],
            step_reduce=step_reduce,
        )
    except NonFiniteScore as err:
        raise ValueError(f"{where}: trace {traces[err.index].id!r}: {err}") from None
    return scored


def by_perturbation(traces: list[LabelledTrace], predicted: list[int], seed: int) -> dict[str, Any]:
    """acc_error of each injected perturbation (exact step found), when the traces record one."""
    groups: dict[str, list[float]] = {}
    for t, p in zip(traces, predicted):
        if t.meta.get("perturbation"):
            groups.setdefault(t.meta["perturbation"], []).append(float(p == t.label))
    return {name: summarize(hits, seed=seed) for name, hits in sorted(groups.items())}


def beyond_likelihood(
    traces: list[LabelledTrace],
    val: Benchmark | None,
    rows: dict[str, dict[str, Any]],
    val_steps: dict[str, dict[str, list[list[float]]]],
    name: str = "reward",
) -> dict[str, Any]:
    """What the reward adds beyond the likelihood at localisation (DESIGN §2.6): agreement of their predictions and
    the step-level residual (`rairl.evaluation.residual.step_items`) with the reward's learned part, its models
    fitted on the validation traces when there are some, else cross-fitted. `name`: the scorer read against the
    likelihood (the learned reward, or the labelled reference)."""
    steps = rows[name]["parts"]["learned"].steps
    labels = [t.label for t in traces]
    reward, likelihood = rows[name]["scored"].steps, rows["likelihood"]["scored"].steps
    predicted = rows[name]["predicted"], rows["likelihood"]["predicted"]
    agreement = prediction_agreement(labels, *predicted, reward, likelihood)
    fit = None
    if val is not None:
        reward_val = val_steps[name]
        fit = step_items([t.label for t in val.traces], val_steps["likelihood"]["value"], reward_val["value"],
                         reward_val["learned"])  # fmt: skip
    figures = {"agreement": agreement, "residual": residual(step_items(labels, likelihood, reward, steps), fit)}
    figures["residual"]["summary"] = describe(figures)
    return figures


@dataclass
class LocalizeConfig(TaskArgs, RewardArgs):
    """`rairl localize`'s options: the labelled traces, the scorers, thresholds and their calibration."""

    source: str = field(default="injected", metadata={"help": "labelled traces: " + " | ".join(SOURCES)})
    split: str = field(default="test", metadata={"help": "injected/natural: the task split"})
    file: str | None = field(default=None, metadata={"help": "file: ProcessBench-format JSONL"})
    samples: str | None = field(default=None, metadata={"help": "natural: a `rairl sample` JSONL (else generated)"})
    limit: int = field(default=0, metadata={"help": "questions (injected, generated) or traces (files); 0 = all"})
    perturbations: str = field(default="", metadata={"help": "injected: comma-separated names (default all)"})
    policy: str | None = field(
        default=None, metadata={"help": "base policy dir: the likelihood baseline, and natural samples when generated"}
    )
    n_samples: int = field(default=4, metadata={"help": "natural, generated: samples per question"})
    temperature: float = field(default=1.0, metadata={"help": "natural, generated: sampling temperature"})
    max_new_tokens: int = field(default=64, metadata={"help": "natural, generated: most tokens per sample"})
    tau: float = field(default=0.0, metadata={"help": "reward threshold τ (0: D = 1/2); ignored with --calibrate"})
    logprob_threshold: float = field(
        default=DEFAULT_LOGPROB_THRESHOLD, metadata={"help": "likelihood threshold on log π (default log 0.1)"}
    )
    calibrate: bool = field(default=False, metadata={"help": "pick both thresholds by F1 on a validation benchmark"})
    hit_k: int = field(default=3, metadata={"help": "k of Hit@k: the first wrong step among the k lowest-scored"})
    val_source: str | None = field(default=None, metadata={"help": "validation source (default: --source)"})
    val_split: str = field(default="validation", metadata={"help": "validation split (injected/natural)"})
    val_file: str | None = field(default=None, metadata={"help": "validation ProcessBench file (source file)"})
    val_samples: str | None = field(default=None, metadata={"help": "validation samples JSONL (source natural)"})
    val_limit: int = field(default=0, metadata={"help": "validation size, as --limit"})
    seed: int = field(default=0, metadata={"help": "perturbation / sampling seed (validation: seed + 1); bootstrap"})
    reference_model: str | None = field(
        default=None, metadata={"help": "a labelled reference reward (a `rairl prm` folder), scored beside the others"}
    )
    reference_tau: float = field(
        default=0.0, metadata={"help": "the reference's threshold τ (0: σ(s) = 1/2); ignored with --calibrate"}
    )
    output_dir: str = field(default="runs/localize", metadata={"help": "folder for metrics.json and predictions.jsonl"})

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in [self.source] + ([self.val_source] if self.val_source else []):
            if name not in SOURCES:
                raise ValueError(f"source must be one of {sorted(SOURCES)}, got {name!r}")
        if unknown := [p for p in self.perturbation_names or [] if p not in PERTURBATIONS]:
            raise ValueError(f"unknown perturbation(s) {unknown}; known: {sorted(PERTURBATIONS)}")
        if self.source == "file" and not self.file:
            raise ValueError("--source file needs --file (a ProcessBench-format JSONL)")
        if self.calibrate and (self.val_source or self.source) == "file" and not self.val_file:
            raise ValueError("--calibrate with a file source needs --val_file (another file: never tune on test data)")
        if self.calibrate and self.val_file and self.val_file == self.file:
            raise ValueError(f"--val_file must differ from --file ({self.file}): never tune on the test set")
        if self.limit < 0 or self.val_limit < 0 or self.n_samples < 1 or self.hit_k < 1:
            raise ValueError(
                f"need limit, val_limit >= 0 and n_samples, hit_k >= 1, got limit={self.limit}, "
                f"val_limit={self.val_limit}, n_samples={self.n_samples}, hit_k={self.hit_k}"
            )

    @property
    def perturbation_names(self) -> list[str] | None:
        return [p.strip() for p in self.perturbations.split(",") if p.strip()] or None


def localize(config: LocalizeConfig) -> dict[str, Any]:
    """Score the test traces (and the validation traces with `calibrate`) by the learned reward and, with `policy`,
    the likelihood; writes `metrics.json` and `predictions.jsonl` (per trace: label, predictions, step scores and the
    reward's `tokens`/`token_rewards` as `rairl score` writes them, rounded for display) to `output_dir` and returns
    the metrics."""
    set_seed(config.seed)
    task = get_task(config)
    device = resolve_device(config.device)

    @functools.cache
    def policy() -> LikelihoodScorer:
        if not config.policy:
            raise ValueError("this run needs --policy PATH (a saved causal LM directory)")
        return LikelihoodScorer.from_pretrained(
            config.policy, device=device, step_spans=task.step_spans, batch_size=config.batch_size
        )

    common = dict(
        perturbations=config.perturbation_names,
        n_samples=config.n_samples,
        temperature=config.temperature,
        max_new_tokens=config.max_new_tokens,
        policy=(lambda: (policy().model, policy().tokenizer)) if config.policy else None,
    )
    test = build(
        config.source, task, SourceSpec(config.split, config.file, config.samples, config.limit, config.seed, **common)
    )
    val: Benchmark | None = None
    if config.calibrate:
        val = build(
            config.val_source or config.source,
            task,
            SourceSpec(
                config.val_split, config.val_file, config.val_samples, config.val_limit, config.seed + 1, **common
            ),
        )

    reward_model = load_reward_model(config, task)
    scorers = {"reward": (reward_model, config.tau)}
    if config.policy:
        scorers["likelihood"] = (policy(), config.logprob_threshold)
    if config.reference_model:
        scorers["reference"] = (load_reference_model(config.reference_model, config, task), config.reference_tau)
    if not config.policy:
        logger.info("no --policy: the base-policy likelihood baseline is skipped")

    labels = [t.label for t in test.traces]
    results: dict[str, Any] = {}
    rows: dict[str, dict[str, Any]] = {}
    val_steps: dict[str, dict[str, list[list[float]]]] = {}
    for name, (scorer, default_tau) in scorers.items():
        reduce = scorer.step_reduce
        parts = score_labelled(scorer, test.traces, reduce, f"{name} on the test traces")
        scored = parts["value"]
        steps = scored.steps
        tau, val_f1 = default_tau, None
        if val is not None:
            val_parts = score_labelled(scorer, val.traces, reduce, f"{name} on the validation traces")
            val_steps[name] = {part: v.steps for part, v in val_parts.items()}
            tau, val_f1 = calibrate_threshold(val_steps[name]["value"], [t.label for t in val.traces])
        predicted = predict(steps, tau)
        results[name] = {
            "threshold": tau,
            "calibrated": val is not None,
            "val_f1": val_f1,
            "step_reduce": reduce,
            **processbench_metrics(predicted, labels, seed=config.seed),
            **ranking_metrics(steps, labels, ks=sorted({1, config.hit_k}), seed=config.seed),
            "by_perturbation": by_perturbation(test.traces, predicted, config.seed),
        }
        rows[name] = {"predicted": predicted, "scored": scored, "parts": parts}
    if config.policy:
        results.update(beyond_likelihood(test.traces, val, rows, val_steps))
        logger.info("localisation beyond the likelihood: %s", results["residual"]["summary"])
        if "reference" in rows:
            ref = beyond_likelihood(test.traces, val, rows, val_steps, name="reference")
            results.update(reference_agreement=ref["agreement"], reference_residual=ref["residual"])
            logger.info("the reference beyond the likelihood: %s", ref["residual"]["summary"])

    report = {
        "source": config.source,
        "n_traces": len(labels),
        "n_error": sum(label != NO_ERROR for label in labels),
        "n_correct": sum(label == NO_ERROR for label in labels),
        "dropped": test.dropped,
        "n_val_traces": len(val.traces) if val else 0,
        **results,
        "config": config_dict(config),
    }
    predictions, eos = [], reward_model.tokenizer.eos_token or ""
    for i, t in enumerate(test.traces):
        row = {
            "id": t.id,
            "prompt": t.meta["prompt"],
            "steps": list(t.steps),
            "label": t.label,
            "predicted": rows["reward"]["predicted"][i],
            "step_scores": rows["reward"]["scored"].steps[i],
            **token_fields(joined(t), rows["reward"]["scored"], i, eos, DISPLAY_DIGITS),
        }
        if "likelihood" in rows:
            row.update(
                likelihood_predicted=rows["likelihood"]["predicted"][i],
                likelihood_step_scores=rows["likelihood"]["scored"].steps[i],
                learned_step_scores=rows["reward"]["parts"]["learned"].steps[i],
            )
        if "reference" in rows:
            row.update(
                reference_predicted=rows["reference"]["predicted"][i],
                reference_step_scores=rows["reference"]["scored"].steps[i],
            )
        if t.meta.get("perturbation") is not None:
            row["perturbation"] = t.meta["perturbation"]
        predictions.append(row)
    out = Path(config.output_dir)
    write_jsonl(out / "predictions.jsonl", predictions)
    write_json(out / "metrics.json", report)
    return report
