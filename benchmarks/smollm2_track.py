"""SmolLM2-135M-Instruct on `arith`, end to end inside one session (issues 21, 28): a real pretrained LM trained and
judged the three ways the paper uses the learned reward, with the paper's plain discriminator beside ours.

    .venv/bin/python benchmarks/smollm2_track.py --threads 2   # ≈ 2.3 h on 2 cores from the committed base adapter
    # (≈ 3 h with the SFT stage; sums of each step's measured time, benchmarks/README.md); rerun to resume
    .venv/bin/python benchmarks/smollm2_track.py --pool        # the results of the finished steps, starting none
    .venv/bin/python benchmarks/smollm2_track.py --smoke       # minutes; its figures mean nothing

Every step is a `rairl` command run in a child process (`.venv/bin/python -m rairl.cli`), skipped when the file it
writes last exists, so a stop at any moment loses at most the running command. After every finished leg the results
file (`benchmarks/results/smollm2_track.{json,txt}`) is rewritten with all that is known so far.

1. `base`: LoRA SFT (r 16, every linear layer, constant learning rate) of SmolLM2 on `arith` demonstrations, in
   chunks of `chunk` steps, greedy accuracy on `n_val` validation questions after each; it stops at the validation
   plateau (two chunks in a row gaining less than PLATEAU) or at `max_chunks`. The adapter is kept in
   `benchmarks/results/smollm2_track_base/` (safetensors, committed), so a later session rebuilds the same base in
   a minute instead of retraining it.
2. `cap`: the base's longest greedy answer on the validation questions, in tokens; every later completion is capped
   at 1.25 × that (RL `max_completion_length`, evaluation `max_new_tokens`).
3. `legs`: for each seed, from the base, the same number of policy updates (`method_steps`) each: continued SFT,
   verifier GRPO, R-AIRL dense with today's likelihood-aware LoRA discriminator (ℓ_t from the adapter-disabled base,
   zero head, f score) and R-AIRL dense with the paper's plain one (s_t = w·h_t + b on SmolLM2, logit score). Each
   policy: greedy on test and OOD, N = `n_pass` samples on test (pass@1). Paired differences to the base.
4. `uses`, after the first seed's legs (whose discriminators it reads): the base's N = 8 samples of test (and of
   validation, where the residual is fitted) reranked by each seed-0 discriminator and by the base's likelihood,
   with pick agreement, rank correlation and the residual (what the reward predicts of correctness beyond the
   likelihood); first-error localisation of injected errors (test) and of the base's natural errors, thresholds
   calibrated on injected errors of the validation split.
`step_ratio_airl_over_grpo`: seconds per policy step of the R-AIRL legs over the GRPO legs (warm-up excluded).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, ROOT, environment, flags, out_dir, parser, set_threads  # noqa: E402

from rairl.demo.results import compare, format_summary, pool_eval, pool_localize, pool_rerank  # noqa: E402
from rairl.io import atomic_dir, write_json, write_text  # noqa: E402

PLATEAU = 0.02
SIZE = dict(
    chunk=50, max_chunks=6, batch=8, lr=2e-4, lora_r=16, n_val=64, n_eval=128, n_pass=4, n_rerank=8, method_steps=24,
    prompts=2, gens=8, rl_lr=2e-4, warmup=8, seeds="0,1",
)  # fmt: skip
SMOKE = dict(
    chunk=2, max_chunks=2, batch=2, lr=2e-4, lora_r=4, n_val=4, n_eval=4, n_pass=2, n_rerank=2, method_steps=1,
    prompts=1, gens=2, rl_lr=1e-4, warmup=1, seeds="0",
)  # fmt: skip
MODEL = "smollm2-135m"
METHODS = ("sft", "airl_dense", "grpo_verifier", "airl_plain")  # a stop loses the last: SFT and R-AIRL pair first
DISCRIMINATORS = ("airl_dense", "airl_plain")  # the seed-0 discriminators the uses stage reads
BASE_ADAPTER = RESULTS / "smollm2_track_base"


class Unfinished(Exception):
    """A step that `--pool` would have had to run."""


POOL = {"only": False}  # --pool: read the finished steps, start none


def rairl(marker: Path, argv: list[str], log: Path) -> None:
    """`rairl ARGV` in a child process unless `marker` (the file it writes last) exists; output to `log`. With
    `--pool`, a missing marker raises `Unfinished` instead."""
    if marker.is_file():
        return
    if POOL["only"]:
        raise Unfinished(str(marker))
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with log.open("a") as f:
        f.write(f"$ rairl {' '.join(argv)}\n")
        f.flush()
        code = subprocess.call([sys.executable, "-m", "rairl.cli", *argv], stdout=f, stderr=subprocess.STDOUT)
    print(f"  rairl {argv[0]:<8} {time.perf_counter() - start:7.0f} s  -> {marker.parent}", flush=True)
    if code != 0:
        raise SystemExit(f"rairl {argv[0]} failed (exit {code}); its output: {log}")


def evaluate(policy: Path, out: Path, split: str, n: int, size: dict, cap: int) -> dict[str, Any]:
    """`rairl eval` of one split: greedy and `n` samples (T = 1) per question; returns its metrics.json."""
    argv = ["eval", *flags(model=policy, splits=split, n=n, k="1", n_eval=size["n_eval"], max_new_tokens=cap,
                           batch_size=64, output_dir=out)]  # fmt: skip
    rairl(out / "metrics.json", argv, out / "eval.log")
    return json.loads((out / "metrics.json").read_text())


ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")


def snapshot(run: Path, dest: Path) -> None:
    """Copy the final (merged) model and tokenizer at the root of `run` into `dest`, whole, with the LoRA adapter of
    `run`'s last checkpoint, if it has one, in `dest/adapter` (a few MB: what a later session rebuilds it from)."""
    checkpoints = sorted(run.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    with atomic_dir(dest) as tmp:
        for f in run.iterdir():
            if f.is_file() and f.suffix in (".json", ".safetensors", ".jinja", ".txt", ".model"):
                shutil.copy2(f, tmp / f.name)
        if checkpoints:
            (tmp / "adapter").mkdir()
            for name in ADAPTER_FILES:
                shutil.copy2(checkpoints[-1] / name, tmp / "adapter" / name)


def keep_adapter(kept: Path, curve: list[dict[str, Any]]) -> None:
    """The chosen chunk's LoRA adapter and the SFT curve into the committed `BASE_ADAPTER`."""
    with atomic_dir(BASE_ADAPTER) as tmp:
        for name in ADAPTER_FILES:
            shutil.copy2(kept / "adapter" / name, tmp / name)
        write_text(tmp / "curve.json", json.dumps(curve, indent=1) + "\n")


def rebuild_base(dest: Path) -> None:
    """The base model folder from the committed adapter: SmolLM2 + adapter, merged, saved with its tokenizer."""
    code = (
        "import sys; from peft import PeftModel; from rairl.models import ModelArgs, load_policy; "
        "from rairl.trainers.common import save_final; "
        f"m, t = load_policy(ModelArgs(model={MODEL!r})); "
        "save_final(PeftModel.from_pretrained(m, sys.argv[1]), t, sys.argv[2])"
    )
    subprocess.run([sys.executable, "-c", code, str(BASE_ADAPTER), str(dest)], check=True)


def train_base(out: Path, size: dict, threads: list[str]) -> tuple[Path, list[dict[str, Any]]]:
    """Stage 1: the base, rebuilt from the committed adapter when there is one, else chunked LoRA SFT until the
    validation plateau; returns its folder and the curve (steps, greedy validation accuracy)."""
    base = out / "base"
    if (BASE_ADAPTER / "curve.json").is_file() and not size["smoke"]:
        if not (base / "config.json").is_file():
            rebuild_base(base)
        return base, json.loads((BASE_ADAPTER / "curve.json").read_text())
    curve: list[dict[str, Any]] = []
    run = out / "sft_base"
    for c in range(1, size["max_chunks"] + 1):
        steps = c * size["chunk"]
        kept = out / f"sft_base_{steps}"
        # a constant learning rate: chunk c continues chunk c-1's run exactly (resumed from its checkpoint)
        options = flags(
            model=MODEL, lora_r=size["lora_r"], max_steps=steps, save_steps=size["chunk"], save_total_limit=1,
            per_device_train_batch_size=size["batch"], learning_rate=size["lr"], lr_scheduler_type="constant",
            warmup_steps=0, logging_steps=10, report_to="none", resume_from_checkpoint="auto", output_dir=run,
        )  # fmt: skip
        if not (kept / "config.json").is_file():
            rairl(run / "train_summary.json", ["sft", *options, *threads], out / "sft_base.log")
            snapshot(run, kept)
            (run / "train_summary.json").unlink()  # the next chunk resumes this run
        metrics = evaluate(kept, kept / "eval_val", "validation", 1, size, 48)["splits"]["validation"]
        curve.append({"steps": steps, "validation_greedy": metrics["greedy"]})
        gains = [b["validation_greedy"]["mean"] - a["validation_greedy"]["mean"] for a, b in zip(curve, curve[1:])]
        if len(gains) >= 2 and max(gains[-2:]) < PLATEAU:
            break
    best = max(curve, key=lambda p: p["validation_greedy"]["mean"])  # chosen on validation
    chosen = out / f"sft_base_{best['steps']}"
    if not size["smoke"]:
        keep_adapter(chosen, curve)
    if not (base / "config.json").is_file():
        snapshot(chosen, base)
    return base, curve


def completion_cap(base: Path, size: dict) -> dict[str, Any]:
    """Stage 2: the longest greedy answer of the base on the validation questions (48 tokens allowed), in tokens,
    and the cap; the base's greedy validation accuracy beside them (a rebuilt base must match the curve)."""
    from transformers import AutoTokenizer

    metrics = evaluate(base, base / "eval_val", "validation", 1, size, 48)["splits"]["validation"]
    rows = [json.loads(line) for line in (base / "eval_val" / "validation_greedy.jsonl").open()]
    tokenizer = AutoTokenizer.from_pretrained(base)
    lengths = [len(tokenizer(r["response"], add_special_tokens=False)["input_ids"]) + 1 for r in rows]  # + EOS
    cap = math.ceil(1.25 * max(lengths))
    return {"longest": max(lengths), "mean": sum(lengths) / len(lengths), "cap": cap, "greedy": metrics["greedy"]}


def train_method(method: str, base: Path, seed: int, out: Path, size: dict, cap: int, threads: list[str]) -> Path:
    """Stage 3: one policy from the base, `method_steps` policy updates (LoRA r as the base's)."""
    run = out / method / f"seed{seed}"
    common = flags(model=base, lora_r=size["lora_r"], max_steps=size["method_steps"], seed=seed, logging_steps=1,
                   report_to="none", save_steps=10**9, resume_from_checkpoint="auto", output_dir=run)  # fmt: skip
    rl = flags(per_device_train_batch_size=size["prompts"] * size["gens"], num_generations=size["gens"],
               learning_rate=size["rl_lr"], warmup_steps=0, lr_scheduler_type="constant",
               max_completion_length=cap)  # fmt: skip
    airl = ["airl", *common, *rl, *flags(granularity="dense", disc_model="policy", disc_lora_r=size["lora_r"],
                                         disc_warmup_steps=size["warmup"])]  # fmt: skip
    argv = {
        "sft": ["sft", *common, *flags(per_device_train_batch_size=size["batch"], learning_rate=size["lr"],
                                       lr_scheduler_type="constant", warmup_steps=0)],
        "grpo_verifier": ["grpo", *common, *rl],
        "airl_dense": airl,
        "airl_plain": [*airl, "--no_disc_likelihood"],
    }[method]  # fmt: skip
    rairl(run / "train_summary.json", [*argv, *threads], run / "train.log")
    return run


def read_rows(folder: Path, split: str) -> dict[str, list[dict]]:
    files = {kind: folder / f"{split}_{kind}.jsonl" for kind in ("greedy", "samples")}
    return {kind: [json.loads(line) for line in path.open()] for kind, path in files.items()}


def evaluate_policy(policy: Path, size: dict, cap: int, n_test: int) -> dict[str, dict[str, list[dict]]]:
    """Greedy on test and OOD, `n_test` samples per test question; the rows of both splits."""
    evaluate(policy, policy / "eval_test", "test", n_test, size, cap)
    evaluate(policy, policy / "eval_ood", "ood", 1, size, cap)
    return {"test": read_rows(policy / "eval_test", "test"), "ood": read_rows(policy / "eval_ood", "ood")}


def step_seconds(run: Path) -> float | None:
    """Mean seconds per policy step of a finished RL leg, from its log's per-step timestamps (warm-up excluded)."""
    rows = [json.loads(line) for line in (run / "log.jsonl").open() if line.strip()]
    times = [r["time_s"] for r in rows if "time_s" in r and r.get("step", 0) >= 1]
    return (times[-1] - times[0]) / (len(times) - 1) if len(times) >= 2 else None


def step_ratio(runs: dict[str, list[Path]]) -> dict[str, Any]:
    """Seconds per policy step of each RL leg so far, and R-AIRL dense's over verifier GRPO's (seeds summed)."""
    per_step = {m: [step_seconds(r) for r in runs[m]] for m in ("grpo_verifier", "airl_dense", "airl_plain")}
    out: dict[str, Any] = {"step_s": per_step}
    pairs = list(zip(per_step["grpo_verifier"], per_step["airl_dense"]))  # the seeds both legs have finished
    if pairs and all(g and a for g, a in pairs):
        out["step_ratio_airl_over_grpo"] = round(sum(a for _, a in pairs) / sum(g for g, _ in pairs), 3)
    return out


def training_health(run: Path) -> dict[str, Any]:
    """What the leg's log says: training reward first → last third, grad-norm max / median, the discriminator."""
    from rairl.trainers.monitor import log_summary

    return log_summary([json.loads(line) for line in (run / "log.jsonl").open() if line.strip()])


def uses(base: Path, runs: dict[str, list[Path]], out: Path, size: dict, cap: int) -> dict[str, Any]:
    """Stage 4: reranking and localisation by each seed-0 discriminator and by the base's likelihood."""
    task = flags(n_eval=size["n_eval"])
    samples = base / "eval_test" / "test_samples.jsonl"
    fit = base / "eval_valn" / "validation_samples.jsonl"
    evaluate(base, base / "eval_valn", "validation", size["n_rerank"], size, cap)
    rerank, localize = {}, {}
    for disc in DISCRIMINATORS:
        model = runs[disc][0] / "discriminator"
        folder = out / f"rerank_{disc}"
        options = flags(samples=samples, fit_samples=fit, reward_model=model, policy=base, output_dir=folder)
        rairl(folder / "metrics.json", ["rerank", *task, *options], folder / "run.log")
        seed_run = {"seed": 0, "dir": str(out)}
        rerank[disc] = pool_rerank([seed_run], disc, size["n_rerank"], ("reward_min", "likelihood_mean"))
        metrics = json.loads((folder / "metrics.json").read_text())  # its residual is fitted on validation samples
        rerank[disc].update({k: metrics[k]["reward/min"] for k in ("agreement", "residual") if k in metrics})
        for name, source in (("injected", flags(source="injected", split="test", limit=size["n_eval"])),
                             ("natural", flags(source="natural", samples=samples))):  # fmt: skip
            folder = out / f"localize_{disc}_{name}"
            argv = ["localize", *task, *source, *flags(reward_model=model, policy=base, val_source="injected",
                    val_split="validation", val_limit=size["n_val"], max_new_tokens=cap, output_dir=folder),
                    "--calibrate"]  # fmt: skip
            rairl(folder / "metrics.json", argv, folder / "run.log")
        names = [f"{disc}_{name}" for name in ("injected", "natural")]
        reports = {n: json.loads((out / f"localize_{n}" / "metrics.json").read_text()) for n in names}
        pooled = pool_localize([{**seed_run, "localize": reports}], names)
        for name in names:  # the command's residual is fitted on the validation traces (the pooled one cross-fits)
            pooled[name].update({k: reports[name][k] for k in ("agreement", "residual") if k in reports[name]})
        localize[disc] = {name: pooled[f"{disc}_{name}"] for name in ("injected", "natural")}
    return {"rerank": rerank, "localize": localize}


def results_so_far(state: dict[str, Any], seeds: list[int]) -> dict[str, Any]:
    """Pool every finished leg: accuracy of each policy, paired differences to the base and to continued SFT (the
    paper's first claim), seeds pooled."""
    per_seed = [{"seed": s, "dir": "", "rows": {m: rows for (m, seed), rows in state["rows"].items() if seed == s}}
                for s in seeds]  # fmt: skip
    per_seed[0]["rows"]["base"] = state["base_rows"]
    per_seed = [run for run in per_seed if run["rows"]]
    done = [m for m in METHODS if any(m in run["rows"] for run in per_seed)]
    # pass@1 from every policy's test samples (OOD has one sample each: pass@1 there is one sample's verdict)
    methods = pool_eval(per_seed[:1], ["base"], 1) | pool_eval(per_seed, done, 1)
    versus_sft = compare(per_seed, [m for m in done if m != "sft"], "sft") if "sft" in done else {}
    return {"methods": methods, "comparisons": compare(per_seed, done, "base") | versus_sft}


def write_results(results: dict[str, Any], target: Path) -> None:
    write_json(target, results)
    write_text(target.with_suffix(".txt"), format_results(results) + "\n")


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--output", default=None, help="run folder (default runs/smollm2_track[_smoke])")
    p.add_argument("--pool", action="store_true", help="rewrite the results from the finished steps; start none")
    args = p.parse_args()
    POOL["only"] = args.pool
    start = time.perf_counter()
    size = {**(SMOKE if args.smoke else SIZE), "smoke": args.smoke}
    out = Path(args.output or ROOT / ("runs/smollm2_track_smoke" if args.smoke else "runs/smollm2_track"))
    threads = ["--threads", str(set_threads(args.threads))]
    os.environ["OMP_NUM_THREADS"] = threads[1]  # the inference commands' torch threads
    target = out_dir(args) / "smollm2_track.json"
    clock = out / "wall_time_s.json"  # seconds spent by earlier invocations of this run (a resumed track adds up)
    spent = json.loads(clock.read_text())["s"] if clock.is_file() else 0.0

    base, curve = train_base(out, size, threads)
    cap = completion_cap(base, size)
    seeds = [int(s) for s in size["seeds"].split(",")]
    state: dict[str, Any] = {"size": size, "rows": {}}
    state["base_rows"] = evaluate_policy(base, size, cap["cap"], size["n_rerank"])
    results: dict[str, Any] = {"size": size, "sft_curve": curve, "completion": cap}
    runs: dict[str, list[Path]] = {m: [] for m in METHODS}

    def save() -> None:
        results["wall_time_s"] = round(spent + (0.0 if args.pool else time.perf_counter() - start), 1)  # pool: no work
        write_json(clock, {"s": results["wall_time_s"]})
        results["environment"] = environment()
        write_results(results, target)

    for seed in seeds:
        for method in METHODS:
            try:
                run = train_method(method, base, seed, out, size, cap["cap"], threads)
                state["rows"][(method, seed)] = evaluate_policy(run, size, cap["cap"], size["n_pass"])
            except Unfinished:
                continue
            runs[method].append(run)
            results.update(results_so_far(state, seeds))
            if method != "sft":
                results.setdefault("training_logs", {})[f"seed{seed}/{method}"] = training_health(run)
            results.update(step_ratio(runs))
            save()
        if seed == seeds[0]:  # the uses read the first seed's discriminators: run them before the next seed's legs
            with contextlib.suppress(Unfinished):  # --pool: uses not yet run are left out
                results.update(uses(base, runs, out, size, cap["cap"]))
                save()
    print(format_results(results))
    print(f"saved {target}")


def format_results(results: dict[str, Any]) -> str:
    lines = ["LoRA SFT of SmolLM2 on arith (greedy, validation):"]
    for point in results["sft_curve"]:
        lines.append(f"  {point['steps']:>5} steps: {format_summary(point['validation_greedy'], False)}")
    c = results["completion"]
    lines.append(f"longest base answer {c['longest']} tokens (mean {c['mean']:.1f}): completions capped at {c['cap']}")
    if "methods" in results:
        lines.append(f"{'policy':<14} {'test greedy':<30} {'test pass@1':<30} OOD greedy")
        for name, entry in results["methods"].items():
            cells = [format_summary(entry[s][k], False) for s, k in (("id", "greedy"), ("id", "pass@1"),
                                                                      ("ood", "greedy"))]  # fmt: skip
            lines.append(f"  {name:<12} {cells[0]:<30} {cells[1]:<30} {cells[2]}")
        for key, diff in results["comparisons"].items():
            lines.append(f"  {key:<34} {format_summary(diff, True)}")
    for name, log in results.get("training_logs", {}).items():
        reward = log.get("rewards/correctness/mean", {})
        if reward:
            lines.append(f"  {name:<24} training correctness {reward['first_third']:.2f} → {reward['last_third']:.2f}")
    if "step_ratio_airl_over_grpo" in results:
        ratio, per_step = results["step_ratio_airl_over_grpo"], results["step_s"]
        lines.append(f"R-AIRL step / GRPO step: {ratio} (s per step {per_step})")
    for disc, r in results.get("rerank", {}).items():
        lines.append(f"reranking the base's {r['n']} samples by {disc} (success@1|N):")
        for key in ("pass@1", "random", "majority", r["likelihood_name"], r["best_reward"], "oracle"):
            lines.append(f"  {key:<18} {format_summary(r[key], False)}")
        lines.append(f"  learned − likelihood {format_summary(r['best_vs_likelihood'], True)}")
        if "residual" in r:
            lines.append(f"  beyond the likelihood: {r['residual']['summary']} ({r['residual']['fit']})")
    for disc, entry in results.get("localize", {}).items():
        for name in ("injected", "natural"):
            for scorer, e in (("reward", entry[name]), ("likelihood", entry[name]["likelihood"])):
                cells = [f"{k} {format_summary(e[k], False)}" for k in ("acc_error", "f1", "hit@1", "map")]
                lines.append(f"localize {disc:<11} {name:<9} {scorer:<10} " + "  ".join(cells))
            if "residual" in entry[name]:
                lines.append(f"  beyond the likelihood: {entry[name]['residual']['summary']}")
    if "wall_time_s" in results:
        lines.append(f"track wall time so far: {results['wall_time_s'] / 3600:.2f} h")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
