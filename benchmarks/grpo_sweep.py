"""Which RL regime moves the demo's policy? A sweep of verifier GRPO (`rairl grpo`) from the demo's base (issue 20).

    .venv/bin/python benchmarks/grpo_sweep.py --base runs/demo/base                # the grid, one seed, ~1 h
    .venv/bin/python benchmarks/grpo_sweep.py --base runs/demo/base --rows NAME,NAME --seeds 0,1,2
    .venv/bin/python benchmarks/grpo_sweep.py --base runs/demo/base --seeds done   # the table of every run made
    .venv/bin/python benchmarks/grpo_sweep.py --smoke                              # seconds; figures mean nothing

Each row is `rairl grpo` from the same base with a few options changed from `CENTER` (learning rate, steps, prompts
per step, group size G, temperature, KL β, clip range ε, PPO iterations μ). Per run: the training reward curve (the
verifier's mean correctness of each step's samples: its first and last thirds and its least-squares slope per 100
steps), the largest grad-norm over its median, and greedy accuracy on the **validation** split (the figure a
setting is chosen by) and on the test split (reported, never chosen on), each with the paired difference to the
base on the same questions, seeds pooled. Runs go `--workers` at a time as single-thread processes; a run whose
output exists is read, not rerun. Writes `OUTPUT/results.json` and `benchmarks/results/grpo_sweep.{json,txt}`, the
latter keeping the rows of earlier invocations that this one did not run (`merged`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, SMOKE_RESULTS, flags, run_once, smoke_base, table, write_result  # noqa: E402

from rairl.demo.results import format_summary  # noqa: E402
from rairl.evaluation.metrics import paired_diff, summarize  # noqa: E402
from rairl.io import write_json  # noqa: E402
from rairl.jobs import Job, run_jobs, usable_cores  # noqa: E402
from rairl.trainers.common import SUMMARY_FILE  # noqa: E402
from rairl.trainers.monitor import log_summary  # noqa: E402

# The demo's GRPO before this sweep: 30 steps of 4 prompts × G = 8 at lr 5e-5, T = 1, β = 0, ε = 0.2, μ = 1.
CENTER = dict(
    max_steps=30,
    prompts=4,
    num_generations=8,
    learning_rate=5e-5,
    temperature=1.0,
    beta=0.0,
    epsilon=0.2,
    num_iterations=1,
)
ROWS: dict[str, dict[str, Any]] = {
    "demo_before": {},
    "annealed_base": dict(base="annealed"),
    "lr1e-4": dict(learning_rate=1e-4),
    "lr2e-4": dict(learning_rate=2e-4),
    "lr5e-4": dict(learning_rate=5e-4),
    "p8_lr5e-5": dict(prompts=8),
    "p8_lr1e-4": dict(prompts=8, learning_rate=1e-4),
    "p8_lr1e-4_s40": dict(prompts=8, learning_rate=1e-4, max_steps=40),
    "annealed_p8_lr1e-4_s40": dict(prompts=8, learning_rate=1e-4, max_steps=40, base="annealed"),
    "g16_lr1e-4": dict(num_generations=16, learning_rate=1e-4),
    "t0.7_lr1e-4": dict(temperature=0.7, learning_rate=1e-4),
    "t1.3_lr1e-4": dict(temperature=1.3, learning_rate=1e-4),
    "beta0.04_lr1e-4": dict(beta=0.04, learning_rate=1e-4),
    "eps0.1_mu2_lr1e-4": dict(epsilon=0.1, num_iterations=2, learning_rate=1e-4),
    "p8_lr5e-5_s60": dict(prompts=8, max_steps=60),
    "p16_lr5e-5": dict(prompts=16),
    # LoRA (r 16 on every linear layer): the update confined to a low-rank subspace, at LoRA's usual higher rates
    "lora16_p8_lr5e-4": dict(prompts=8, lora_r=16, learning_rate=5e-4),
    "lora16_p8_lr1e-3": dict(prompts=8, lora_r=16, learning_rate=1e-3),
    "lora16_p8_lr2e-3": dict(prompts=8, lora_r=16, learning_rate=2e-3),
}
SMOKE = dict(max_steps=2, prompts=2, num_generations=2)


def grpo_argv(base: str, run: Path, options: dict[str, Any], seed: int, n_eval: int) -> list[str]:
    o = {**CENTER, **options}
    prompts = o.pop("prompts")
    o.pop("base", None)
    return [
        "grpo",
        *flags(
            model=base,
            output_dir=run,
            seed=seed,
            per_device_train_batch_size=prompts * o["num_generations"],
            warmup_steps=0,
            lr_scheduler_type="constant",
            logging_steps=1,
            report_to="none",
            save_steps=10**9,
            resume_from_checkpoint="auto",  # a run cut short continues from its last checkpoint
            threads=1,
            n_eval=n_eval,
            **o,
        ),
    ]


def greedy(policy: str | Path, out: Path, n_eval: int) -> dict[str, list[float]]:
    """Greedy verdicts (1/0) per question on validation and test, in question order."""
    argv = ["eval", *flags(model=policy, n_eval=n_eval, splits="validation,test", n=1, k="1", output_dir=out)]
    run_once(out / "metrics.json", argv)
    return {
        s: [float(json.loads(x)["correct"]) for x in (out / f"{s}_greedy.jsonl").open()] for s in ("validation", "test")
    }


def curve(run: Path) -> dict[str, Any]:
    """The training reward: first/last third means and slope per 100 steps (`log_summary`); grad-norm spike."""
    summary = log_summary([json.loads(line) for line in (run / "log.jsonl").open()])
    reward, grad = summary["rewards/correctness/mean"], summary["grad_norm"]
    return {
        "first_third": round(reward["first_third"], 4),
        "last_third": round(reward["last_third"], 4),
        "slope_per_100_steps": round(reward["slope_per_100_steps"], 4),
        "grad_norm_max_over_median": round(grad["max"] / max(grad["median"], 1e-8), 2),
    }


def one_run(name: str, options: dict[str, Any], seed: int, bases: dict[str, str], out: Path, n_eval: int):
    """One row's run for one seed: train, then greedy verdicts on validation and test."""
    run = out / name / f"seed{seed}"
    base = bases[options.get("base", "demo")]
    run_once(run / SUMMARY_FILE, grpo_argv(base, run, options, seed, n_eval))
    wall = json.loads((run / SUMMARY_FILE).read_text())["wall_time_s"]
    return {
        "name": name,
        "seed": seed,
        "train_s": round(wall, 1),
        **curve(run),
        "greedy": greedy(run, run / "eval", n_eval),
    }


def summarise(runs: list[dict[str, Any]], bases: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    """Per row: pooled greedy accuracy and paired difference to the base per split; curve figures per seed."""
    rows: dict[str, Any] = {}
    for r in runs:
        rows.setdefault(r["name"], []).append(r)
    out = {}
    for name, rs in rows.items():
        entry: dict[str, Any] = {"options": {**CENTER, **ROWS.get(name, {})}, "seeds": [r["seed"] for r in rs]}
        base = bases[ROWS.get(name, {}).get("base", "demo")]
        for split in ("validation", "test"):
            pooled = [x for r in rs for x in r["greedy"][split]]
            entry[split] = summarize(pooled)
            entry[f"{split}_minus_base"] = paired_diff(pooled, base[split] * len(rs))
        for key in ("slope_per_100_steps", "first_third", "last_third", "grad_norm_max_over_median", "train_s"):
            entry[key] = [r[key] for r in rs]
        out[name] = entry
    return out


def format_table(summary: dict[str, Any], bases: dict[str, Any]) -> str:
    head = [
        "row",
        "train s",
        "reward first→last third",
        "slope/100",
        "validation − base (choice)",
        "test − base",
        "test",
    ]
    lines = [
        [
            name,
            " ".join(f"{t:.0f}" for t in e["train_s"]),
            " ".join(f"{a:.2f}→{b:.2f}" for a, b in zip(e["first_third"], e["last_third"])),
            " ".join(f"{s:+.2f}" for s in e["slope_per_100_steps"]),
            format_summary(e["validation_minus_base"], True),
            format_summary(e["test_minus_base"], True),
            format_summary(e["test"], False),
        ]
        for name, e in summary.items()
    ]
    notes = [
        f"{b} base: validation {format_summary(g['validation'], False)}, test {format_summary(g['test'], False)}"
        for b, g in bases.items()
    ]
    return "\n".join([table(lines, head), *notes])


def merged(saved: Path, results: dict[str, Any]) -> dict[str, Any]:
    """`results` with the rows and runs of an earlier sweep saved at `saved` (same n_eval) that this one did not
    run again: invocations on a few rows each add up to one table. Rows from another base keep their base's path
    in their name ("ROW @ PATH"), and that base's accuracy is kept beside."""
    if not saved.is_file():
        return results
    before = json.loads(saved.read_text())
    if before.get("n_eval") != results["n_eval"]:
        return results
    same = before.get("bases") == results["bases"]

    def name(row: str) -> str:
        return row if same or " @ " in row else f"{row} @ {before['bases']['demo']}"

    names = set(results["rows"])
    greedy = {b if same or " @ " in b else f"{b} @ {before['bases'][b]}": g for b, g in before["base_greedy"].items()}
    return {
        **results,
        "base_greedy": {**greedy, **results["base_greedy"]},
        "rows": {**{name(k): v for k, v in before["rows"].items() if name(k) not in names}, **results["rows"]},
        "runs": [{**r, "name": name(r["name"])} for r in before.get("runs", []) if name(r["name"]) not in names]
        + results["runs"],
    }


def row_seeds(seeds: str, row_dir: Path) -> list[int]:
    """`seeds` as a list; "done": the seeds whose run under `row_dir` has finished."""
    if seeds != "done":
        return [int(s) for s in seeds.split(",")]
    return sorted(int(d.name.removeprefix("seed")) for d in row_dir.glob("seed*") if (d / SUMMARY_FILE).exists())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", default="runs/demo/base", help="the demo's base: every row starts from it")
    p.add_argument("--annealed_base", default="runs/base_annealed", help="the base of rows marked 'annealed' (the "
                   "demo's recipe before this sweep: its learning rate annealed to 0)")  # fmt: skip
    p.add_argument("--rows", default="", help="comma-separated row names (default: all)")
    p.add_argument("--seeds", default="0", help="comma-separated, or 'done': each row's seeds already run (the "
                   "table of a finished sweep, nothing trained)")  # fmt: skip
    p.add_argument("--n_eval", type=int, default=256, help="questions per evaluation split")
    p.add_argument("--workers", type=int, default=usable_cores())
    p.add_argument("--output", default=None, help="run folder (default runs/grpo_sweep[_smoke])")
    p.add_argument("--smoke", action="store_true", help="a tiny budget that only proves the script runs")
    args = p.parse_args()
    out = Path(args.output or ("runs/grpo_sweep_smoke" if args.smoke else "runs/grpo_sweep"))
    names = [r for r in args.rows.split(",") if r] or list(ROWS)
    if unknown := [r for r in names if r not in ROWS]:
        raise SystemExit(f"unknown rows {unknown}; known: {list(ROWS)}")
    bases = {"demo": args.base, "annealed": args.annealed_base}
    if args.smoke:
        bases, args.n_eval = {"demo": str(out / "base"), "annealed": str(out / "base")}, 8
        smoke_base(out / "base", 5)
        for name in names:
            ROWS[name] = {**ROWS[name], **SMOKE}
    seeds = {name: row_seeds(args.seeds, out / name) for name in names}
    used = sorted({ROWS[name].get("base", "demo") for name in names})
    todo = [
        Job(f"base/{b}", greedy, dict(policy=bases[b], out=out / f"base_eval_{b}", n_eval=args.n_eval)) for b in used
    ]
    todo += [
        Job(f"{name}/seed{seed}", one_run, dict(name=name, options=ROWS[name], seed=seed, bases=bases, out=out,
            n_eval=args.n_eval), log=out / name / f"seed{seed}" / "job.log")
        for name in names
        for seed in seeds[name]
    ]  # fmt: skip
    done, _ = run_jobs(todo, args.workers, desc="grpo sweep")
    base_greedy = {b: done[f"base/{b}"] for b in used}
    runs = [done[f"{name}/seed{seed}"] for name in names for seed in seeds[name]]
    results = {
        "bases": bases,
        "n_eval": args.n_eval,
        "base_greedy": {b: {s: summarize(v) for s, v in g.items()} for b, g in base_greedy.items()},
        "rows": summarise(runs, base_greedy),
        "runs": [{k: v for k, v in r.items() if k != "greedy"} for r in runs],
    }
    write_json(out / "results.json", results)
    dest = SMOKE_RESULTS if args.smoke else RESULTS
    results = merged(dest / "grpo_sweep.json", results)
    write_result(dest / "grpo_sweep.json", results)
    text = format_table(results["rows"], results["base_greedy"])
    (dest / "grpo_sweep.txt").write_text(text + "\n")
    print(text)
    print(f"saved {dest / 'grpo_sweep.json'}")


if __name__ == "__main__":
    main()
