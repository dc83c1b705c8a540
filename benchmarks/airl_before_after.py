"""R-AIRL from an SFT base on arith: the policy's accuracy before and after, per granularity and seed, and the
final reward–correctness correlation (issue: R-AIRL core).

    .venv/bin/rairl sft --output_dir runs/sft_default            # its checkpoint-1000 is the 30–60% base
    .venv/bin/python benchmarks/airl_before_after.py --base runs/sft_default/checkpoint-1000

For every method (`dense`, `outcome`: `rairl airl --granularity ...`; `grpo`: `rairl grpo`, the verifier
reference) and seed, the same budget: `--max_steps` policy steps of `--batch` samples (G = 8 per prompt) at
`--learning_rate`, after `--disc_warmup_steps` discriminator-only steps. Then `rairl eval` (greedy, test and OOD,
300 questions each). Before/after: greedy accuracy with n and a 95% bootstrap CI, and the paired difference to
the base on the same questions (pooled over seeds: each seed's questions count once per seed). Correlation:
the Pearson correlation of the learned reward with correctness over the step's samples, at the last step and
averaged over the last 10 steps. A run whose folder already holds results is read, not rerun (delete it to redo).
Writes `runs/airl_before_after/results.json` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from rairl.cli import main as rairl
from rairl.demo.results import format_summary
from rairl.evaluation.metrics import paired_diff, summarize

sys.path.insert(0, str(Path(__file__).parent))
from common import write_result  # noqa: E402

METHODS = ("dense", "outcome", "grpo")


def greedy_correct(eval_dir: Path, split: str) -> dict[str, bool]:
    rows = [json.loads(line) for line in (eval_dir / f"{split}_greedy.jsonl").read_text().splitlines()]
    return {r["id"]: bool(r["correct"]) for r in rows}


def ensure_eval(model: Path, out: Path) -> Path:
    if not (out / "metrics.json").is_file():
        assert rairl(["eval", "--model", str(model), "--n", "1", "--k", "1", "--output_dir", str(out)]) == 0
    return out


def train(method: str, seed: int, args, out: Path) -> None:
    if (out / "train_summary.json").is_file():
        return
    common = [
        "--model",
        args.base,
        "--max_steps",
        str(args.max_steps),
        "--learning_rate",
        str(args.learning_rate),
        "--per_device_train_batch_size",
        str(args.batch),
        "--num_generations",
        "8",
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
        "--output_dir",
        str(out),
    ]
    if method == "grpo":
        assert rairl(["grpo", *common]) == 0
    else:
        assert (
            rairl(["airl", *common, "--granularity", method, "--disc_warmup_steps", str(args.disc_warmup_steps)]) == 0
        )


def correlations(run: Path) -> dict[str, float]:
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    corr = [r["reward/corr"] for r in rows if "reward/corr" in r]
    return {"final": round(corr[-1], 3), "last10_mean": round(statistics.fmean(corr[-10:]), 3)} if corr else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the SFT policy R-AIRL starts from")
    parser.add_argument("--methods", default="dense,outcome")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--max_steps", type=int, default=40)
    parser.add_argument("--learning_rate", type=float, default=5e-5)
    parser.add_argument("--batch", type=int, default=64, help="samples per policy step (prompts × 8)")
    parser.add_argument("--disc_warmup_steps", type=int, default=20)
    parser.add_argument("--output_dir", default="runs/airl_before_after")
    args = parser.parse_args()
    out = Path(args.output_dir)
    seeds = [int(s) for s in args.seeds.split(",")]
    before = {
        split: greedy_correct(ensure_eval(Path(args.base), out / "base_eval"), split) for split in ("test", "ood")
    }
    results: dict[str, Any] = {
        "args": vars(args),
        "before": {s: summarize(list(map(float, v.values()))) for s, v in before.items()},
        "methods": {},
    }
    table = [("base", "", *(f"{results['before'][s]['mean']:.3f}" for s in ("test", "ood")), "", "", "")]
    for method in args.methods.split(","):
        if method not in METHODS:
            raise SystemExit(f"unknown method {method!r}; known: {', '.join(METHODS)}")
        per_seed, pooled = [], {s: ([], []) for s in before}
        for seed in seeds:
            run = out / f"{method}_s{seed}"
            train(method, seed, args, run)
            after = {s: greedy_correct(ensure_eval(run, run / "eval"), s) for s in before}
            entry = {"seed": seed, "corr": correlations(run)}
            for split, correct in after.items():
                ids = sorted(before[split])
                a, b = [float(correct[i]) for i in ids], [float(before[split][i]) for i in ids]
                entry[split] = {"after": summarize(a), "diff": paired_diff(a, b)}
                pooled[split][0].extend(a)
                pooled[split][1].extend(b)
            per_seed.append(entry)
            table.append(
                (
                    method,
                    seed,
                    *(f"{entry[s]['after']['mean']:.3f}" for s in before),
                    format_summary(entry["test"]["diff"], signed=True),
                    entry["corr"].get("final", ""),
                    entry["corr"].get("last10_mean", ""),
                )
            )
        results["methods"][method] = {
            "per_seed": per_seed,
            "pooled": {s: {"after": summarize(a), "diff": paired_diff(a, b)} for s, (a, b) in pooled.items()},
        }
        p = results["methods"][method]["pooled"]
        table.append(
            (
                method,
                "pooled",
                f"{p['test']['after']['mean']:.3f}",
                f"{p['ood']['after']['mean']:.3f}",
                format_summary(p["test"]["diff"], signed=True),
                "",
                "",
            )
        )
    write_result(out / "results.json", results)
    header = (
        "method",
        "seed",
        "test greedy",
        "ood greedy",
        "test after - before [95% CI]",
        "corr final",
        "corr last10",
    )
    for row in [header, *table]:
        print(" | ".join(str(c) for c in row))


if __name__ == "__main__":
    main()
