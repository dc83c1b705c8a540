"""SmolLM2-135M-Instruct on `arith`, end to end: a real pretrained LM that can learn the task, trained and judged
the three ways the paper uses the learned reward (issue 21). Resumable: every step is a `rairl` command whose
output marks it done, and the long SFT runs in chunks that resume from their last checkpoint.

    taskset -c 1 .venv/bin/python benchmarks/smollm2_track.py --threads 1   # hours on one core; rerun to resume
    .venv/bin/python benchmarks/smollm2_track.py --smoke                    # minutes; its figures mean nothing

1. `sft`: LoRA SFT (r 16, every linear layer, constant learning rate) of SmolLM2 on `arith` demonstrations, in
   chunks of `chunk` steps; after each chunk, pass@1 (N = 4, T = 1) on the validation split. It stops when
   validation pass@1 reaches 0.4, or when two chunks in a row gain less than 0.02 (a plateau), or at `max_chunks`.
   The stopping rule reads validation only; test figures are reported, never used.
2. From that base, for each seed: continued SFT, R-AIRL dense (LoRA policy and LoRA discriminator over one shared
   base) and verifier GRPO, the same number of policy updates each (`method_steps`).
3. Every policy: greedy and pass@1 (N = 4) on test and OOD; paired differences to the base, seeds pooled.
4. The base's N = 8 samples of the test split reranked by the learned reward (R-AIRL seed 0's discriminator) and by
   the base's own likelihood; first-error localisation of injected errors (test) and of the base's natural errors,
   thresholds calibrated on injected errors of the validation split.
5. `step_ratio_airl_over_grpo` from `benchmarks/results/smollm2_speed.json` (`benchmarks/smollm2_speed.py`).
Writes `OUTPUT/results.json`, `benchmarks/results/smollm2_track.{json,txt}`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, environment, flags, out_dir, parser, run_once, set_threads  # noqa: E402

from rairl.demo.results import (  # noqa: E402
    RERANK_PICKS,
    compare,
    format_summary,
    pool_eval,
    pool_localize,
    pool_rerank,
)
from rairl.io import write_json  # noqa: E402

TARGET_PASS1 = 0.4
PLATEAU = 0.02
SIZE = dict(
    chunk=50, max_chunks=20, batch=8, lr=2e-4, lora_r=16, n_eval=128, n_val=64, method_steps=30, prompts=2,
    gens=8, rl_lr=1e-4, warmup=10, seeds="0,1", n_rerank=8,
)  # fmt: skip
SMOKE = dict(
    chunk=2, max_chunks=2, batch=2, lr=2e-4, lora_r=4, n_eval=4, n_val=4, method_steps=1, prompts=1, gens=2,
    rl_lr=1e-4, warmup=1, seeds="0", n_rerank=2,
)  # fmt: skip
MODEL = "smollm2-135m"
METHODS = ("sft", "airl_dense", "grpo_verifier")


def evaluate(policy: Path | str, out: Path, splits: str, size: dict, n: int) -> dict[str, Any]:
    """`rairl eval`: greedy and N samples per question (T = 1) on `splits`; returns its metrics.json. (Inference
    commands use the process's torch threads, set once in `main`; trainers take `--threads`.)"""
    argv = ["eval", *flags(model=policy, splits=splits, n=n, k="1", n_eval=size["n_eval"], max_new_tokens=48,
                           batch_size=64, output_dir=out)]  # fmt: skip
    run_once(out / "metrics.json", argv)
    return json.loads((out / "metrics.json").read_text())


def snapshot(run: Path, dest: Path) -> None:
    """Copy the final model and tokenizer at the root of `run` (not its checkpoints or logs) into `dest`, whole."""
    import shutil

    from rairl.io import atomic_dir

    with atomic_dir(dest) as tmp:
        for f in run.iterdir():
            if f.is_file() and f.suffix in (".json", ".safetensors", ".jinja", ".txt", ".model"):
                shutil.copy2(f, tmp / f.name)


def train_base(out: Path, size: dict, threads: list[str]) -> tuple[Path, list[dict[str, Any]]]:
    """Stage 1: chunked LoRA SFT until validation pass@1 reaches TARGET_PASS1 or plateaus; returns the folder
    of the last chunk's model and the curve (steps, validation and test pass@1 after each chunk)."""
    curve: list[dict[str, Any]] = []
    run = out / "sft_base"
    for c in range(1, size["max_chunks"] + 1):
        steps = c * size["chunk"]
        kept = out / f"sft_base_{steps}"
        if not (kept / "config.json").is_file():
            # a constant learning rate: chunk c continues chunk c-1's run exactly (resumed from its checkpoint)
            options = flags(
                model=MODEL, lora_r=size["lora_r"], max_steps=steps, save_steps=size["chunk"], save_total_limit=1,
                per_device_train_batch_size=size["batch"], learning_rate=size["lr"], lr_scheduler_type="constant",
                warmup_steps=0, logging_steps=10, report_to="none", resume_from_checkpoint="auto", output_dir=run,
            )  # fmt: skip
            run_once(kept / "config.json", ["sft", *options, *threads])
            snapshot(run, kept)
        metrics = evaluate(kept, kept / "eval", "validation,test", size, 4)["splits"]
        curve.append({"steps": steps, **{s: metrics[s]["pass@1"] for s in ("validation", "test")}})
        gains = [b["validation"]["mean"] - a["validation"]["mean"] for a, b in zip(curve, curve[1:])]
        if curve[-1]["validation"]["mean"] >= TARGET_PASS1 or (len(gains) >= 2 and max(gains[-2:]) < PLATEAU):
            break
    return out / f"sft_base_{curve[-1]['steps']}", curve


def train_method(method: str, base: Path, seed: int, out: Path, size: dict, threads: list[str]) -> Path:
    """Stage 2: one policy from the base, `method_steps` policy updates (LoRA r as the base's)."""
    run = out / method / f"seed{seed}"
    common = flags(model=base, lora_r=size["lora_r"], max_steps=size["method_steps"], seed=seed, logging_steps=1,
                   report_to="none", save_steps=10**9, output_dir=run)  # fmt: skip
    rl = flags(per_device_train_batch_size=size["prompts"] * size["gens"], num_generations=size["gens"],
               learning_rate=size["rl_lr"], warmup_steps=0, lr_scheduler_type="constant",
               max_completion_length=48)  # fmt: skip
    argv = {
        "sft": ["sft", *common, *flags(per_device_train_batch_size=size["batch"], learning_rate=size["lr"],
                                       lr_scheduler_type="constant", warmup_steps=0)],
        "airl_dense": ["airl", *common, *rl, *flags(granularity="dense", disc_model="policy",
                                                    disc_lora_r=size["lora_r"], disc_warmup_steps=size["warmup"])],
        "grpo_verifier": ["grpo", *common, *rl],
    }[method]  # fmt: skip
    run_once(run / "config.json", [*argv, *threads])
    return run


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--output", default=None, help="run folder (default runs/smollm2_track[_smoke])")
    p.add_argument("--stop_after", choices=("sft", "methods", "eval"), default=None, help="stop after this stage")
    args = p.parse_args()
    size = dict(SMOKE if args.smoke else SIZE)
    out = Path(args.output or ("runs/smollm2_track_smoke" if args.smoke else "runs/smollm2_track"))
    threads = ["--threads", str(set_threads(args.threads))]
    base, curve = train_base(out, size, threads)
    results: dict[str, Any] = {"size": size, "base": str(base), "sft_curve": curve}
    if args.stop_after != "sft":
        seeds = [int(s) for s in size["seeds"].split(",")]
        runs = {m: [train_method(m, base, s, out, size, threads) for s in seeds] for m in METHODS}
        if args.stop_after != "methods":
            results.update(judge(base, runs, seeds, out, size))
    ratio = RESULTS / "smollm2_speed.json"
    if ratio.is_file():
        results["step_ratio_airl_over_grpo"] = json.loads(ratio.read_text()).get("step_ratio_airl_over_grpo")
    results["environment"] = environment()
    target = out_dir(args) / "smollm2_track.json"
    write_json(out / "results.json", results)
    write_json(target, results)
    text = format_results(results)
    target.with_suffix(".txt").write_text(text + "\n")
    print(text)
    print(f"saved {target}")


def read_rows(folder: Path, split: str) -> dict[str, list[dict]]:
    return {
        kind: [json.loads(line) for line in (folder / f"{split}_{kind}.jsonl").open()] for kind in ("greedy", "samples")
    }


def judge(base: Path, runs: dict[str, list[Path]], seeds: list[int], out: Path, size: dict) -> dict[str, Any]:
    """Stages 3-4: accuracy of every policy, then reranking and localisation by the learned reward."""
    evaluate(base, base / "eval_final", "test,ood", size, size["n_rerank"])
    per_seed = []
    for i, seed in enumerate(seeds):
        rows = {}
        for method, paths in runs.items():
            evaluate(paths[i], paths[i] / "eval", "test,ood", size, 4)
            rows[method] = {s: read_rows(paths[i] / "eval", s) for s in ("test", "ood")}
        rows["base"] = {s: read_rows(base / "eval_final", s) for s in ("test", "ood")}
        per_seed.append({"seed": seed, "dir": str(out), "rows": rows})
    methods = pool_eval(per_seed[:1], ["base"], size["n_rerank"]) | pool_eval(per_seed, METHODS, 4)
    comparisons = compare(per_seed, METHODS, "base")

    disc, task = runs["airl_dense"][0] / "discriminator", flags(n_eval=size["n_eval"])
    samples = base / "eval_final" / "test_samples.jsonl"
    run_once(out / "rerank_test" / "metrics.json", ["rerank", *task, *flags(
        samples=samples, reward_model=disc, policy=base, output_dir=out / "rerank_test")])  # fmt: skip
    for name, source in (("injected", flags(source="injected", split="test", limit=size["n_eval"])),
                         ("natural", flags(source="natural", samples=samples))):  # fmt: skip
        argv = ["localize", *task, *source, *flags(reward_model=disc, policy=base, val_source="injected",
                val_split="validation", val_limit=size["n_val"], output_dir=out / f"localize_{name}"),
                "--calibrate"]  # fmt: skip
        run_once(out / f"localize_{name}" / "metrics.json", argv)
    names = ("injected", "natural")
    first = {
        **per_seed[0],
        "localize": {n: json.loads((out / f"localize_{n}" / "metrics.json").read_text()) for n in names},
    }
    localize = pool_localize([first], names)
    return {
        "methods": methods,
        "comparisons": comparisons,
        "rerank": pool_rerank([first], "test", size["n_rerank"], RERANK_PICKS),
        # injected errors at the top (localize.<scorer>.acc_error), the base's natural errors under "natural"
        "localize": {
            "reward": localize["injected"],
            "likelihood": localize["injected"]["likelihood"],
            "natural": {"reward": localize["natural"], "likelihood": localize["natural"]["likelihood"]},
        },
    }


def format_results(results: dict[str, Any]) -> str:
    lines = ["LoRA SFT of SmolLM2 on arith (pass@1, N = 4):"]
    for point in results["sft_curve"]:
        lines.append(f"  {point['steps']:>5} steps: validation {format_summary(point['validation'], False)}, "
                     f"test {format_summary(point['test'], False)}")  # fmt: skip
    if "methods" in results:
        lines.append("greedy / pass@1, test and OOD:")
        for name, entry in results["methods"].items():
            cells = [format_summary(entry[s][k], False) for s in ("id", "ood") for k in ("greedy", "pass@1")]
            lines.append(f"  {name:<14} " + "  ".join(cells))
        for key, diff in results["comparisons"].items():
            lines.append(f"  {key:<34} {format_summary(diff, True)}")
        r = results["rerank"]
        lines.append(f"reranking the base's {r['n']} samples (success@1|N):")
        for key in ("pass@1", "random", "majority", r["likelihood_name"], r["best_reward"], "oracle"):
            lines.append(f"  {key:<18} {format_summary(r[key], False)}")
        lines.append(f"  learned − likelihood {format_summary(r['best_vs_likelihood'], True)}")
        for name, entry in (("injected", results["localize"]), ("natural", results["localize"]["natural"])):
            for scorer in ("reward", "likelihood"):
                e = entry[scorer]
                cells = [f"{k} {format_summary(e[k], False)}" for k in ("acc_error", "f1", "hit@1", "map")]
                lines.append(f"localize {name:<9} {scorer:<10} " + "  ".join(cells))
    lines.append(f"R-AIRL step / GRPO step: {results.get('step_ratio_airl_over_grpo')}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
