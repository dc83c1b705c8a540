"""What makes the discriminator learn beyond the likelihood ℓ_t it reads? (issue 27.) Each row is one change to the
default R-AIRL dense run (ℓ_t from a frozen reference copy, zero head, BCE, f score) at the demo's budget, 3 seeds,
read on **validation** data only, each figure against the base policy's likelihood:

    .venv/bin/python benchmarks/residual_study.py --base runs/demo/base --rows default,budget_x4 --seeds 0,1,2
    .venv/bin/python benchmarks/residual_study.py --base runs/demo/base --table   # pool every finished row
    .venv/bin/python benchmarks/residual_study.py --smoke                          # proves it runs

Axes (`ROWS`): the discriminator's budget (updates ×1, ×4, ×16: every warm-up and policy step updates it n_disc
times, 50 updates by default), its negatives (no perturbed experts; 4 perturbed copies per expert; a replay buffer of
every earlier sample, the GAIL practice; only the policy's *wrong* samples, an upper bound that reads the verifier),
its capacity (a backbone twice as wide, or one pretrained like the base on all the demonstrations instead of a fifth:
more arith data than the policy saw), plain (s_t = w·h_t + b, logit score) against likelihood-aware, and the loss
(BCE / nnPU).
Per row, seeds pooled:
- rerank: the base's N = 8 samples of 128 validation questions per seed reranked by the reward (min aggregation, as
  the demo) — the residual AUC gain of [ℓ, r] over [ℓ] (`rairl.evaluation.residual`, cross-fitted over questions),
  the share of questions where reward and likelihood pick the same sample, and success@1|8 − the likelihood's;
- localisation: injected errors on validation, thresholds calibrated on injected errors of the *train* split:
  per-trace exactness − the likelihood's, and the step-level residual cross-fitted over the pooled traces; natural
  errors in the base's samples: F1 − the likelihood's F1 (bootstrap over traces);
- training seconds of the run (one thread).
A run whose folder holds its results is read, not rerun. Writes `OUTPUT/results.json` and, with `--table`,
`benchmarks/results/residual_study.{json,txt}`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, run_once, write_result  # noqa: E402
from method_check import calibrated, exactness, health, train, use_flags, validation_samples  # noqa: E402

from rairl.demo import runs  # noqa: E402
from rairl.demo.config import DemoConfig  # noqa: E402
from rairl.demo.results import format_summary, pool_localize, pool_rerank  # noqa: E402
from rairl.evaluation.metrics import bootstrap_ci, paired_diff  # noqa: E402
from rairl.evaluation.processbench import NO_ERROR, f1  # noqa: E402
from rairl.io import write_json, write_text  # noqa: E402

BACKBONES = {  # name: the demo base recipe with these changes (trained once, shared by the seeds)
    "wide": dict(hidden_size=256),
    "more_data": dict(base_fraction=1.0),
}
ROWS: dict[str, list[str]] = {
    "default": [],
    "budget_x4": ["--n_disc", "4"],  # every warm-up and policy step updates D n_disc times: 200 updates, not 50
    "budget_x16": ["--n_disc", "16"],
    "no_perturbed": ["--perturbed_per_expert", "0"],
    "perturbed_x4": ["--perturbed_per_expert", "4"],
    "replay_all": ["--replay_size", "4096", "--replay_per_step", "32"],
    "wrong_only": ["--disc_negatives", "wrong"],
    "wide_backbone": ["--disc_model", "{backbone:wide}"],
    "more_data_backbone": ["--disc_model", "{backbone:more_data}"],
    "plain": ["--no_disc_likelihood"],
    "nnpu": ["--disc_loss", "nnpu", "--disc_pu_prior", "0.3"],
}
SIZE = {"n_eval": 128, "max_steps": 30, "batch": 64, "warmup": 20, "n": 8}
SMOKE = {"n_eval": 8, "max_steps": 1, "batch": 8, "warmup": 0, "n": 2}
PICK = ("reward_min", "likelihood_mean")  # the demo's rerank aggregations (chosen on validation: method_check.py)


def backbone(name: str, out: Path, smoke: bool) -> str:
    """The folder of a discriminator backbone, trained once with the demo's base recipe changed by `BACKBONES`."""
    folder = out / f"backbone_{name}"
    if not (folder / "base" / "config.json").is_file():
        changes = {**BACKBONES[name], **({"fast": True} if smoke else {})}
        runs.train_base(DemoConfig(output_dir=str(folder), **changes), str(folder))
    return str(folder / "base")


def flags_of(row: str, out: Path, smoke: bool) -> list[str]:
    return [backbone(f[10:-1], out, smoke) if f.startswith("{backbone:") else f for f in ROWS[row]]


def use(run_dir: Path, base: str, samples: Path, seed: int, size: dict[str, int], backbone: str | None = None):
    """Rerank and localise with the run's discriminator in its own score form; the localisation reports. With a
    discriminator `backbone` of its own, the samples are reranked against that backbone's likelihood too (does the
    reward add to its own LM, or only to the policy's?)."""
    n = str(size["n_eval"])
    common = use_flags("arith", n, run_dir, base, seed)
    run_once(
        run_dir / "rerank_val" / "metrics.json",
        ["rerank", *common, "--samples", str(samples), "--output_dir", str(run_dir / "rerank_val")],
    )
    if backbone is not None:
        own = [backbone if arg == base else arg for arg in common]  # the same command, the backbone's likelihood
        folder = run_dir / "rerank_vs_backbone"
        run_once(folder / "metrics.json", ["rerank", *own, "--samples", str(samples), "--output_dir", str(folder)])
    reports = {}
    for source, extra in (
        ("injected", ["--split", "validation", "--limit", n]),
        ("natural", ["--samples", str(samples)]),
    ):
        folder = run_dir / f"localize_{source}"
        run_once(
            folder / "metrics.json",
            [
                "localize",
                *common,
                "--source",
                source,
                *extra,
                *calibrated(n),
                "--output_dir",
                str(folder),
            ],
        )
        reports[source] = json.loads((folder / "metrics.json").read_text())
    return {"localize": reports}


def f1_difference(per_seed: list[dict], name: str, seed: int = 0) -> dict[str, Any]:
    """F1(reward) − F1(likelihood) on the pooled traces, with a bootstrap CI over traces."""
    preds = [
        json.loads(line)
        for run in per_seed
        for line in Path(run["dir"], f"localize_{name}", "predictions.jsonl").read_text().splitlines()
    ]
    labels = np.array([p["label"] for p in preds])
    cols = np.array([[p["predicted"] == p["label"], p["likelihood_predicted"] == p["label"]] for p in preds], float)
    wrong = labels != NO_ERROR

    def diff(idx_cols: np.ndarray) -> float:
        w, c = idx_cols[:, 2] > 0, idx_cols[:, 2] == 0
        scores = [
            f1(float(idx_cols[w, k].mean()) if w.any() else 0.0, float(idx_cols[c, k].mean()) if c.any() else 0.0)
            for k in (0, 1)
        ]
        return scores[0] - scores[1]

    data = np.column_stack([cols, wrong.astype(float)])
    lo, hi = bootstrap_ci(data, diff, seed=seed)
    return {"mean": diff(data), "ci95": [lo, hi], "n": len(preds)}


def summarise(per_seed: list[dict], size: dict[str, int]) -> dict[str, Any]:
    rerank = pool_rerank(per_seed, "val", size["n"], PICK)
    localize = pool_localize(per_seed, ["injected", "natural"])
    own = {}
    if all(Path(r["dir"], "rerank_vs_backbone", "scored.jsonl").is_file() for r in per_seed):
        vs = pool_rerank(per_seed, "vs_backbone", size["n"], PICK)
        own = {"rerank_vs_own_backbone": {k: vs[k] for k in ("best_vs_likelihood", "agreement", "residual") if k in vs}}
    return {
        **own,
        "rerank": {k: rerank[k] for k in ("gain", "best_vs_likelihood", "agreement", "residual") if k in rerank},
        "injected_exact_vs_likelihood": paired_diff(*exactness(per_seed, "injected")),
        "injected_residual": localize["injected"].get("residual"),
        "natural_f1_vs_likelihood": f1_difference(per_seed, "natural"),
        "natural_f1": localize["natural"]["f1"],
        "likelihood_natural_f1": localize["natural"]["likelihood"]["f1"],
        "train_s": [json.loads(Path(r["dir"], "train_summary.json").read_text())["wall_time_s"] for r in per_seed],
        "health": [health(Path(r["dir"])) for r in per_seed],
    }


def table(results: dict[str, Any]) -> str:
    lines = [
        f"{'row':<20} {'rerank residual AUC gain':<32} {'same pick':<10} {'rerank − ll':<32} "
        f"{'inj exact − ll':<32} {'inj residual':<32} {'nat F1 − ll':<32} train s"
    ]
    for row, r in results["rows"].items():
        res, agree = r["rerank"].get("residual", {}), r["rerank"].get("agreement", {})
        same = agree.get("same_pick", {}).get("mean")
        cells = [
            format_summary(res.get("auc_gain"), True),
            "-" if same is None else f"{100 * same:.0f}%",
            format_summary(r["rerank"]["best_vs_likelihood"], True),
            format_summary(r["injected_exact_vs_likelihood"], True),
            format_summary((r["injected_residual"] or {}).get("auc_gain"), True),
            format_summary(r["natural_f1_vs_likelihood"], True),
        ]
        seconds = sum(r["train_s"]) / len(r["train_s"])
        lines.append(
            f"{row:<20} {cells[0]:<32} {cells[1]:<10} {cells[2]:<32} {cells[3]:<32} {cells[4]:<32} "
            f"{cells[5]:<32} {seconds:.0f}"
        )
    for row, r in results["rows"].items():
        if "rerank_vs_own_backbone" in r:
            own = r["rerank_vs_own_backbone"]
            lines.append(f"{row} against its own backbone's likelihood: {own['residual']['summary']}; rerank − its "
                         f"likelihood {format_summary(own['best_vs_likelihood'], True)}")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", default=None, help="base policy folder (default: train the demo's base)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--rows", default=",".join(ROWS))
    p.add_argument("--output", default="runs/residual_study")
    p.add_argument("--table", action="store_true", help="pool the finished rows into benchmarks/results/")
    p.add_argument("--smoke", action="store_true", help="a tiny budget that only proves the script runs")
    args = p.parse_args()
    size = dict(SMOKE if args.smoke else SIZE)
    out = Path(args.output)
    base = args.base
    if base is None:
        base = str(out / "base")
        if not (out / "base" / "config.json").is_file():
            runs.train_base(DemoConfig(output_dir=str(out), fast=args.smoke), str(out))
    seeds = [int(s) for s in args.seeds.split(",")]
    for seed in seeds:
        validation_samples(out, base, "arith", size, seed)
    rows = [r for r in args.rows.split(",") if r]
    if unknown := [r for r in rows if r not in ROWS]:
        raise SystemExit(f"unknown row(s) {unknown}; known: {list(ROWS)}")
    results: dict[str, Any] = {"seeds": seeds, "base": base, "size": size, "rows": {}}
    for row in rows:
        per_seed = []
        for seed in seeds:
            run_dir = out / row / f"seed{seed}"
            done = (run_dir / "localize_natural" / "metrics.json").is_file()
            if args.table and not done:
                break  # the table pools finished rows only
            train("reference_zero", seed, base, run_dir, size, "arith", tuple(flags_of(row, out, args.smoke)))
            samples = out / f"samples_seed{seed}.jsonl"
            backbone = next((f for f in flags_of(row, out, args.smoke) if Path(f, "config.json").is_file()), None)
            reports = use(run_dir, base, samples, seed, size, backbone)
            per_seed.append({"seed": seed, "dir": str(run_dir), **reports})
        if len(per_seed) == len(seeds):
            results["rows"][row] = summarise(per_seed, size)
    write_json(out / "results.json", results)
    text = table(results)
    print(text)
    if args.table:
        target = (RESULTS / "smoke" if args.smoke else RESULTS) / "residual_study.json"
        write_result(target, results)
        write_text(target.with_suffix(".txt"), text + "\n")
        print(f"saved {target}")


if __name__ == "__main__":
    main()
