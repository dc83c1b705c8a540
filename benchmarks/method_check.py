"""Which discriminator variant adds to the base likelihood it starts from? Every variant side by side with the
base policy's likelihood, seeds pooled, on validation data only (issue: the learned reward must add to what it
starts from).

    .venv/bin/python benchmarks/method_check.py                      # trains the demo's base first (~4 min)
    .venv/bin/python benchmarks/method_check.py --base runs/demo/base --seeds 0,1,2

For each seed and training variant (`VARIANTS`: where ℓ_t is read from, how the head starts, and the loss: BCE, or
the non-negative PU risk that treats the policy's samples as unlabeled, prior 0.3 ≈ the base's pass@1), one R-AIRL dense
run from the base at the demo's budget (30 policy steps of 4 prompts × 8 samples, lr 5e-5, 20 warm-up D steps).
Each trained discriminator is read in both score forms (`logit`: r_t = s_t, AIRL's training reward; `f`:
s_t + ℓ_t, the reward with the −log π term added back) and used to
- rerank the base policy's N = 8 samples of the *validation* split (success@1|8, its gain over pass@1, and the
  paired difference to the base likelihood's best aggregation, pooled over seeds);
- localise injected errors on validation and the base's natural errors in those samples, thresholds calibrated
  on injected errors of the *train* split (never on what is measured); paired difference of per-trace exactness
  (first error found, or no flag on a correct trace) to the likelihood baseline.
Training health per run: the largest grad-norm over its median, and the head's likelihood weights (a_1, a_2).
A run whose folder holds results is read, not rerun (delete it to redo). Writes `OUTPUT/results.json` and a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from common import flags, run_once, write_result  # noqa: E402

from rairl.demo import runs  # noqa: E402
from rairl.demo.config import GENERATED, DemoConfig  # noqa: E402
from rairl.demo.results import format_summary, pool_localize, pool_rerank  # noqa: E402
from rairl.discriminator import Discriminator  # noqa: E402
from rairl.evaluation.metrics import paired_diff  # noqa: E402

# name: the `rairl airl` flags that make it. The first is the R-AIRL core as it stood before this check.


VARIANTS = {
    "backbone_runmin": ["--disc_likelihood_from", "backbone", "--disc_head_init", "running_min"],
    "reference_runmin": ["--disc_likelihood_from", "reference", "--disc_head_init", "running_min"],
    "reference_zero": ["--disc_likelihood_from", "reference", "--disc_head_init", "zero"],
    "reference_zero_nnpu": [
        "--disc_likelihood_from",
        "reference",
        "--disc_head_init",
        "zero",
        "--disc_loss",
        "nnpu",
        "--disc_pu_prior",
        "0.3",
    ],
    # the authors' newer recipe (issue 20): warm the discriminator up on experts against perturbed experts alone
    # (2 copies each, label smoothing 0.1 as everywhere), then the adversarial phase as usual
    "reference_zero_perturbed_warmup": [
        "--disc_likelihood_from",
        "reference",
        "--disc_head_init",
        "zero",
        "--disc_warmup_negatives",
        "perturbed",
        "--disc_warmup_perturbed",
        "2",
    ],
}
FORMS = {"logit": "last", "f": "min"}  # score form: the step reduction localisation reads it with
# The demo's budget; --smoke shrinks it to prove the script runs (its figures then mean nothing).
SIZE = {"n_eval": 128, "max_steps": 30, "batch": 32, "warmup": 20, "n": 8}
SMOKE = {"n_eval": 8, "max_steps": 1, "batch": 8, "warmup": 0, "n": 2}


def train(variant: str, seed: int, base: str, out: Path, size: dict[str, int], task: str, extra: tuple = ()) -> None:
    """One R-AIRL dense run of `variant` at the demo's budget; `extra` flags come last (they override)."""
    run_once(
        out / "train_summary.json",
        [
            "airl",
            "--task",
            task,
            "--model",
            base,
            "--granularity",
            "dense",
            "--max_steps",
            str(size["max_steps"]),
            "--learning_rate",
            "5e-5",
            "--per_device_train_batch_size",
            str(size["batch"]),
            "--num_generations",
            "8",
            "--disc_warmup_steps",
            str(size["warmup"]),
            "--warmup_steps",
            "0",
            "--lr_scheduler_type",
            "constant",
            "--logging_steps",
            "1",
            "--save_steps",
            "100000",
            "--report_to",
            "none",
            "--resume_from_checkpoint",
            "auto",  # a run cut short continues from its last checkpoint
            "--seed",
            str(seed),
            "--n_eval",
            str(size["n_eval"]),
            "--output_dir",
            str(out),
            *VARIANTS[variant],
            *extra,
        ],
    )


def calibrated(n_val: str) -> list[str]:
    """`rairl localize`'s thresholds calibrated on `n_val` injected errors of the *train* split (never validation)."""
    return ["--calibrate", *flags(val_source="injected", val_split="train", val_limit=n_val)]


def use_flags(task: str, n_eval: str, run_dir: Path, base: str, seed: int) -> list[str]:
    """The flags every use of a run's discriminator shares (`rairl rerank` / `localize`): task, questions, the
    discriminator, the base policy whose likelihood is the baseline, and the seed."""
    return flags(task=task, n_eval=n_eval, reward_model=run_dir / "discriminator", policy=base, seed=seed)


def use(run_dir: Path, base: str, samples: Path, seed: int, size: dict[str, int], task: str) -> dict[str, Any]:
    """Rerank and localise with the run's discriminator in every score form; the reports by name."""
    reports: dict[str, Any] = {"localize": {}}
    n = str(size["n_eval"])
    common = use_flags(task, n, run_dir, base, seed)
    for form, reduce in FORMS.items():
        run_once(
            run_dir / f"rerank_{form}_val" / "metrics.json",
            [
                "rerank",
                *common,
                "--samples",
                str(samples),
                "--score_form",
                form,
                "--output_dir",
                str(run_dir / f"rerank_{form}_val"),
            ],
        )
        for source, extra in (
            ("injected", ["--split", "validation", "--limit", n]),
            ("natural", ["--samples", str(samples)]),
        ):
            name = f"{form}_{source}"
            run_once(
                run_dir / f"localize_{name}" / "metrics.json",
                [
                    "localize",
                    *common,
                    "--source",
                    source,
                    *extra,
                    "--score_form",
                    form,
                    "--step_reduce",
                    reduce,
                    *calibrated(n),
                    "--output_dir",
                    str(run_dir / f"localize_{name}"),
                ],
            )
            reports["localize"][name] = json.loads((run_dir / f"localize_{name}" / "metrics.json").read_text())
    return reports


def validation_samples(out: Path, base: str, task: str, size: dict[str, int], seed: int) -> Path:
    """The base policy's N samples of the validation questions under `seed` (`rairl sample`), written once."""
    samples = out / f"samples_seed{seed}.jsonl"
    run_once(samples, ["sample", "--model", base, "--task", task, "--n_eval", str(size["n_eval"]), "--split",
                       "validation", "--n", str(size["n"]), "--seed", str(seed), "--output", str(samples)])  # fmt: skip
    return samples


def health(run_dir: Path) -> dict[str, Any]:
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    norms = [r["grad_norm"] for r in rows if "grad_norm" in r]
    losses = [abs(r["loss"]) for r in rows if "loss" in r]
    disc = Discriminator.from_pretrained(run_dir / "discriminator")
    return {
        "grad_norm_max_over_median": round(max(norms) / statistics.median(norms), 2),
        "loss_abs_max": round(max(losses), 3),
        "likelihood_weights": [round(x, 3) for x in disc.likelihood.tolist()] if disc.uses_likelihood else [],
    }


def exactness(per_seed: list[dict], name: str) -> tuple[list[float], list[float]]:
    """Per-trace exactness (predicted == label) of the reward and of the likelihood, pooled over seeds."""
    reward, likelihood = [], []
    for run in per_seed:
        for line in Path(run["dir"], f"localize_{name}", "predictions.jsonl").read_text().splitlines():
            p = json.loads(line)
            reward.append(float(p["predicted"] == p["label"]))
            likelihood.append(float(p["likelihood_predicted"] == p["label"]))
    return reward, likelihood


def summarise(per_seed: list[dict], form: str, n: int) -> dict[str, Any]:
    rerank = pool_rerank(per_seed, f"{form}_val", n)
    localize = pool_localize(per_seed, [f"{form}_injected", f"{form}_natural"])
    for name in localize:
        localize[name]["exact_vs_likelihood"] = paired_diff(*exactness(per_seed, name))
    return {"rerank": rerank, "localize": localize}


def num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def table(results: dict[str, Any]) -> str:
    lines = [
        f"{'variant/form':<24} {'rerank gain (best agg)':<40} {'vs likelihood':<32} "
        f"{'inj acc_err':<11} {'inj F1':<7} {'nat F1':<7} {'inj exact vs ll':<32} grad max/med"
    ]
    for variant, forms in results["variants"].items():
        worst = max(h["grad_norm_max_over_median"] for h in results["health"][variant])
        for form, r in forms.items():
            rr, loc = r["rerank"], r["localize"]
            inj, nat = loc[f"{form}_injected"], loc[f"{form}_natural"]
            gain = rr["best_reward"] + " " + format_summary(rr["gain"][rr["best_reward"]], True)
            lines.append(
                f"{variant + '/' + form:<24} {gain:<40} {format_summary(rr['best_vs_likelihood'], True):<32} "
                f"{num(inj['acc_error']['mean']):<11} {num(inj['f1']['mean']):<7} {num(nat['f1']['mean']):<7} "
                f"{format_summary(inj['exact_vs_likelihood'], True):<32} {worst:.1f}"
            )
    some = next(iter(next(iter(results["variants"].values())).values()))
    rr, injected = some["rerank"], next(iter(some["localize"].values()))["likelihood"]
    lines.append(
        f"likelihood (base policy, {rr['likelihood_name']}): rerank gain "
        f"{format_summary(rr['gain'][rr['likelihood_name']], True)}; injected acc_err "
        f"{num(injected['acc_error']['mean'])}, F1 {num(injected['f1']['mean'])}"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default=None, help="base policy folder (default: train the demo's base)")
    parser.add_argument("--task", default="arith", choices=GENERATED, help="the task (a generated one)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--batch", type=int, default=None, help="samples per policy step (default 32, the budget "
                        "of the tables in benchmarks/README.md; the demo now takes 64)")  # fmt: skip
    parser.add_argument("--output", default="runs/method_check")
    parser.add_argument("--smoke", action="store_true", help="a tiny budget that only proves the script runs")
    args = parser.parse_args()
    size = dict(SMOKE if args.smoke else SIZE)
    if args.batch:
        size["batch"] = args.batch
    out = Path(args.output)
    base = args.base
    if base is None:
        base = str(out / "base")
        if not (out / "base" / "config.json").is_file():
            runs.train_base(DemoConfig(output_dir=str(out), task=args.task), str(out))
    seeds = [int(s) for s in args.seeds.split(",")]
    results: dict[str, Any] = {"task": args.task, "seeds": seeds, "base": base, "variants": {}, "health": {}}
    for seed in seeds:
        validation_samples(out, base, args.task, size, seed)
    for variant in args.variants.split(","):
        per_seed = []
        for seed in seeds:
            run_dir = out / variant / f"seed{seed}"
            train(variant, seed, base, run_dir, size, args.task)
            samples = out / f"samples_seed{seed}.jsonl"
            per_seed.append({"seed": seed, "dir": str(run_dir), **use(run_dir, base, samples, seed, size, args.task)})
        results["health"][variant] = [health(Path(r["dir"])) for r in per_seed]
        results["variants"][variant] = {form: summarise(per_seed, form, size["n"]) for form in FORMS}
        write_result(out / "results.json", results)
    print(table(results))


if __name__ == "__main__":
    main()
