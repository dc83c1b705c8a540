"""Is imitation fragile away from its demonstrations? SFT, R-AIRL and verifier GRPO trained on few demonstrations,
measured in distribution and out of it (issue: the learned reward must add to what it starts from, part 3).

    .venv/bin/python benchmarks/limited_demos.py --base runs/demo/base        # ~50 min on 2 cores
    .venv/bin/python benchmarks/limited_demos.py --smoke                      # minutes; its figures mean nothing

The base is the demo's warm-started policy (the stand-in for a pretrained LLM; trained here when --base is not
given). The demonstrations are the first k problems of `arith`'s train split under `--task_seed 1`, problems the
base (warm-started on task_seed 0's train split) never saw; the script counts how many of them also occur in the
evaluation splits (reported; 0 expected). For each k in `--demos` and each seed, from the same base:
- `sft`: SFT on the k expert traces for `EPOCHS` passes (lr 5e-4, the demo's continued-SFT rate): it fits them
  (its last logged training loss is in the table);
- `airl`: R-AIRL (the defaults: dense, likelihood from the frozen reference) on the same k traces and prompts;
- `sft_airl`: R-AIRL from the `sft` policy (the usual pipeline: imitate, then refine adversarially);
- `grpo_verifier`: GRPO with the answer checker on the same k prompts (the reference that uses labels).
R-AIRL and GRPO spend the same policy-sample budget (the demo's: 30 steps × 4 prompts × 8 samples); SFT spends
none. Every policy: greedy accuracy on task_seed 0's `test` split (2-4 steps, as trained) and `ood` split (5-6
steps), `--n_eval` questions each; seeds pooled (n = questions × seeds), 95% bootstrap CIs, paired differences
to SFT per question. No setting is chosen here: budgets and rates are the demo's (chosen on validation).
Writes `OUTPUT/results.json`, `benchmarks/results/limited_demos.{json,txt,png}` (accuracy vs k, both splits).
A step whose output exists is read, not rerun.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, SMOKE_RESULTS, flags, run_once, write_result  # noqa: E402

from rairl.demo import runs as demo_runs  # noqa: E402
from rairl.demo.config import DemoConfig  # noqa: E402
from rairl.demo.results import format_summary  # noqa: E402
from rairl.evaluation.metrics import paired_diff, summarize  # noqa: E402
from rairl.io import write_json  # noqa: E402
from rairl.tasks import TaskArgs, get_task  # noqa: E402

METHODS = ("sft", "airl", "sft_airl", "grpo_verifier")
EPOCHS = 8
DEMO_SEED = 1  # task_seed of the demonstrations; evaluation uses task_seed 0
SIZE = {"demos": "125,250,500", "n_eval": 256, "steps": 30, "prompts": 4, "gens": 8, "warmup": 20, "batch": 16}
SMOKE = {"demos": "8,16", "n_eval": 8, "steps": 1, "prompts": 2, "gens": 2, "warmup": 0, "batch": 8}


def overlap(k: int, n_eval: int) -> int:
    """How many of the k demonstration problems also occur in the evaluation splits."""
    demos = get_task(TaskArgs(task="arith", n_train=k, task_seed=DEMO_SEED)).examples("train")
    evaluation = get_task(TaskArgs(task="arith", n_eval=n_eval))
    seen = {ex.meta["problem"] for split in ("test", "ood") for ex in evaluation.examples(split)}
    return sum(ex.meta["problem"] in seen for ex in demos)


def train(method: str, k: int, seed: int, base: str, out: Path, size: dict[str, Any]) -> Path:
    """Train one policy (a step already done is read); returns its folder."""
    run = out / f"k{k}" / f"seed{seed}" / method
    data = dict(
        task="arith",
        n_train=k,
        task_seed=DEMO_SEED,
        seed=seed,
        report_to="none",
        save_steps=10**9,
        resume_from_checkpoint="auto",
    )
    rl = dict(
        max_steps=size["steps"],
        per_device_train_batch_size=size["prompts"] * size["gens"],
        num_generations=size["gens"],
        learning_rate=5e-5,
        warmup_steps=0,
        lr_scheduler_type="constant",
        logging_steps=1,
    )
    if method == "sft":
        steps = max(1, EPOCHS * k // size["batch"])
        argv = flags(
            model=base,
            max_steps=steps,
            per_device_train_batch_size=size["batch"],
            learning_rate=5e-4,
            logging_steps=max(1, steps // 10),
            **data,
        )
        command = "sft"
    elif method in ("airl", "sft_airl"):
        start = str(out / f"k{k}" / f"seed{seed}" / "sft") if method == "sft_airl" else base
        argv = flags(model=start, granularity="dense", disc_warmup_steps=size["warmup"], **rl, **data)
        command = "airl"
    else:
        argv = flags(model=base, **rl, **data)
        command = "grpo"
    run_once(run / "model.safetensors", [command, *argv, "--output_dir", str(run)])
    return run


def evaluate(policy: str | Path, out: Path, n_eval: int) -> dict[str, list[float]]:
    """Greedy verdicts (1/0) per question on test and ood, in question order."""
    run_once(
        out / "metrics.json",
        [
            "eval",
            *flags(model=policy, task="arith", n_eval=n_eval, splits="test,ood", n=1, k="1", output_dir=out),
        ],
    )
    return {
        split: [float(json.loads(line)["correct"]) for line in (out / f"{split}_greedy.jsonl").read_text().splitlines()]
        for split in ("test", "ood")
    }


def last_loss(run: Path) -> float | None:
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    return round(losses[-1], 4) if losses else None


def summarise(verdicts: dict[str, dict[int, list[dict[str, list[float]]]]], base: dict[str, list[float]]):
    """Pooled accuracy per method, k and split (the base: greedy, one run), and paired differences to SFT
    (question × seed)."""
    out: dict[str, Any] = {"base": {s: summarize(v) for s, v in base.items()}, "methods": {}, "vs_sft": {}}
    for method, by_k in verdicts.items():
        for k, runs in by_k.items():
            for split in ("test", "ood"):
                pooled = [x for r in runs for x in r[split]]
                out["methods"].setdefault(method, {}).setdefault(str(k), {})[split] = summarize(pooled)
                if method != "sft":
                    sft = [x for r in verdicts["sft"][k] for x in r[split]]
                    out["vs_sft"].setdefault(method, {}).setdefault(str(k), {})[split] = paired_diff(pooled, sft)
    return out


def table(results: dict[str, Any]) -> str:
    lines = [f"{'method':<14} {'k':>4}  {'test (2-4 steps)':<28} {'ood (5-6 steps)':<28} {'ood − sft (paired)':<30}"]
    base = results["summary"]["base"]
    test, ood = format_summary(base["test"], False), format_summary(base["ood"], False)
    lines.append(f"{'base':<14} {'-':>4}  {test:<28} {ood}")
    for method, by_k in results["summary"]["methods"].items():
        for k, splits in by_k.items():
            diff = results["summary"]["vs_sft"].get(method, {}).get(k, {}).get("ood", "")
            lines.append(
                f"{method:<14} {k:>4}  {format_summary(splits['test'], False):<28} "
                f"{format_summary(splits['ood'], False):<28} {format_summary(diff, True):<30}"
            )
    for method, by_k in results["summary"]["vs_sft"].items():
        for k, splits in by_k.items():
            lines.append(f"{method} − sft, k={k}, test: {format_summary(splits['test'], True)}")
    losses = ", ".join(f"k={k}: {v}" for k, v in results["sft_final_loss"].items())
    lines.append(f"SFT's last logged training loss (seed 0): {losses}; demo/eval overlaps: {results['overlaps']}")
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=False)
    for ax, split, title in zip(axes, ("test", "ood"), ("in distribution (2-4 steps)", "OOD (5-6 steps)")):
        base = results["summary"]["base"][split]["mean"]
        ax.axhline(base, color="grey", linestyle="--", label="base")
        for method, by_k in results["summary"]["methods"].items():
            ks = [int(k) for k in by_k]
            means = [by_k[k][split]["mean"] for k in by_k]
            lo = [m - by_k[k][split]["ci95"][0] for k, m in zip(by_k, means)]
            hi = [by_k[k][split]["ci95"][1] - m for k, m in zip(by_k, means)]
            ax.errorbar(ks, means, yerr=[lo, hi], marker="o", capsize=3, label=method)
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.minorticks_off()
        ax.set_xlabel("demonstrations k")
        ax.set_ylabel("greedy accuracy (95% CI)")
        ax.set_title(title)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(path)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", default=None, help="base policy folder (default: train the demo's base)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--demos", default=None, help="comma-separated numbers of demonstrations k")
    p.add_argument("--output", default=None, help="run folder (default runs/limited_demos[_smoke])")
    p.add_argument("--smoke", action="store_true", help="a tiny budget that only proves the script runs")
    args = p.parse_args()
    size = dict(SMOKE if args.smoke else SIZE)
    out = Path(args.output or ("runs/limited_demos_smoke" if args.smoke else "runs/limited_demos"))
    base = args.base
    if base is None:
        base = str(out / "base")
        if not (out / "base" / "config.json").is_file():
            demo_runs.train_base(DemoConfig(output_dir=str(out), fast=args.smoke), str(out))
    seeds = [int(s) for s in args.seeds.split(",")]
    ks = [int(k) for k in (args.demos or size["demos"]).split(",")]
    verdicts: dict[str, dict[int, list[dict[str, list[float]]]]] = {m: {k: [] for k in ks} for m in METHODS}
    for k in ks:
        for seed in seeds:
            for method in METHODS:
                run = train(method, k, seed, base, out, size)
                verdicts[method][k].append(evaluate(run, run / "eval", size["n_eval"]))
    results = {
        "seeds": seeds,
        "base": base,
        "size": size,
        "epochs": EPOCHS,
        "overlaps": {str(k): overlap(k, size["n_eval"]) for k in ks},
        "sft_final_loss": {str(k): last_loss(out / f"k{k}" / f"seed{seeds[0]}" / "sft") for k in ks},
        "summary": summarise(verdicts, evaluate(base, out / "base_eval", size["n_eval"])),
    }
    write_json(out / "results.json", results)
    dest = SMOKE_RESULTS if args.smoke else RESULTS
    write_result(dest / "limited_demos.json", results)
    text = table(results)
    (dest / "limited_demos.txt").write_text(text + "\n")
    plot(results, dest / "limited_demos.png")
    print(text)


if __name__ == "__main__":
    main()
