"""How much the demo's base policy depends on the seed and the thread count (issue 38), recipe by recipe.

    .venv/bin/python benchmarks/base_spread.py --recipe old --seeds 0,1,2 --threads_list 1,2   # train + evaluate
    .venv/bin/python benchmarks/base_spread.py --table                                        # pool what ran
    .venv/bin/python benchmarks/base_spread.py --smoke                                        # proves it runs

Each run trains one base with `rairl.demo.runs.base_config` (the demo's own SFT run) at one seed and one fixed torch
thread count, saving a checkpoint every `EVAL_EVERY` steps; every checkpoint is then evaluated greedily on the
validation split (128 questions: the curve), and the final model on validation and test. A run whose folder holds its
`curve.json` is read, not rerun, so two processes (`taskset -c 0` / `-c 1`, `--threads_list 1`) can split the work.
`--grpo` also runs verifier GRPO from each base as the demo runs it (its best step on validation) and pairs its test
greedy answers with the base's. `--table` writes `benchmarks/results/base_spread.{json,txt}`: `recipes.<name>.runs[]`
(seed, threads, CPU, validation and test greedy accuracy with n and 95% CI, the curve, verifier GRPO − base) and
`recipes.<name>.spread` (max − min of test greedy).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import common  # noqa: E402

from rairl.demo.config import DemoConfig  # noqa: E402
from rairl.environment import cpu_model  # noqa: E402
from rairl.evaluation.metrics import summarize  # noqa: E402
from rairl.io import write_json, write_text  # noqa: E402

# Each recipe is a set of DemoConfig fields. "old": the demo's base until issue 38 (1,000 steps over a fifth of the
# demonstrations, ~16 epochs, the schedule stopped at 14% of its peak).
RECIPES: dict[str, dict[str, Any]] = {
    "old": dict(base_steps=1000, base_fraction=0.2, base_stop_at=0.0),
    "all_data": dict(base_steps=1000, base_fraction=1.0, base_stop_at=0.0),
    # both above still climb ~0.15 per 100 steps at step 1000 (validation): twice the steps, on every demonstration
    "long": dict(base_steps=2000, base_fraction=1.0, base_stop_at=0.0),
    # "long" plateaus at 0.95-1.0, where a verifier has nothing left to teach: the same run, stopped at the first
    # check every 100 steps whose validation accuracy reaches 0.6 (the demo's base since issue 38)
    "stop60": dict(base_steps=2000, base_fraction=1.0, base_stop_at=0.6, base_validation_every=100),
}
EVAL_EVERY = 100
RUNS = Path("runs/base_spread")


def run_dir(root: Path, recipe: str, seed: int, threads: int) -> Path:
    return root / recipe / f"seed{seed}_threads{threads}"


def greedy_accuracy(model_dir: Path, config: DemoConfig, split: str) -> list[float]:
    """1/0 per question of `split` (the demo's `n_eval` questions), greedy."""
    from rairl.demo.runs import task_args
    from rairl.inference.sampling import load_for_inference, sample_rows
    from rairl.models import ModelArgs
    from rairl.tasks import get_task

    task = get_task(task_args(config))
    model, tokenizer = load_for_inference(ModelArgs(model=str(model_dir)))
    rows = sample_rows(model, tokenizer, task, task.examples(split), greedy=True, batch_size=64, progress=False)
    return [float(bool(r["correct"])) for r in rows]


def train_and_evaluate(recipe: str, seed: int, threads: int, root: Path, smoke: bool) -> dict[str, Any]:
    """One base (seed, threads), its validation curve and its final validation/test accuracy (`curve.json`)."""
    from rairl.demo.runs import base_config
    from rairl.trainers import sft
    from rairl.trainers.common import finished, set_threads

    out = run_dir(root, recipe, seed, threads)
    result_file = out / "curve.json"
    if result_file.is_file():
        return json.loads(result_file.read_text())
    config = DemoConfig(fast=smoke, threads=threads, **({} if smoke else RECIPES[recipe]))
    set_threads(threads)
    every = 20 if smoke else EVAL_EVERY
    if not finished(out):
        sft.train(base_config(config, str(out), seed=seed, save_steps=every, save_total_limit=None))
    curve = []
    for step in range(every, config.base_steps + 1, every):
        checkpoint = out / f"checkpoint-{step}"
        if checkpoint.is_dir():
            curve.append({"step": step, "validation": summarize(greedy_accuracy(checkpoint, config, "validation"))})
    result = {
        "recipe": recipe,
        "seed": seed,
        "threads": threads,
        "cpu": cpu_model(),
        "wall_time_s": json.loads((out / "train_summary.json").read_text())["wall_time_s"],
        "validation": summarize(greedy_accuracy(out, config, "validation")),
        "test": summarize(greedy_accuracy(out, config, "test")),
        "curve": curve,
    }
    write_json(result_file, result)
    return result


def grpo_from(recipe: str, seed: int, threads: int, root: Path, smoke: bool) -> dict[str, Any]:
    """Verifier GRPO from one base, as the demo runs it (`rairl.demo.runs.train_method`: its budget, rate and best step
    on validation, seed 0), and its paired test difference to the base (`grpo.json` in the base's folder)."""
    from rairl.demo.runs import train_method
    from rairl.evaluation.metrics import paired_diff
    from rairl.trainers.common import set_threads

    out = run_dir(root, recipe, seed, threads)
    result_file = out / "grpo.json"
    if result_file.is_file():
        return json.loads(result_file.read_text())
    config = DemoConfig(fast=smoke, threads=threads, **({} if smoke else RECIPES[recipe]))
    set_threads(threads)
    log = train_method(config, str(out), 0, "grpo_verifier", str(out / "grpo_verifier"))
    ours, base = (greedy_accuracy(p, config, "test") for p in (out / "grpo_verifier", out))
    result = {"best": log["best"], "test": summarize(ours), "minus_base": paired_diff(ours, base),
              "train_reward": log.get("rewards/correctness/mean")}  # fmt: skip
    write_json(result_file, result)
    return result


def table(root: Path) -> dict[str, Any]:
    """Every finished run under `root`, by recipe, with the spread of test greedy accuracy."""
    recipes: dict[str, Any] = {}
    for path in sorted(root.glob("*/*/curve.json")):
        run = json.loads(path.read_text())
        if (path.parent / "grpo.json").is_file():
            run["grpo_verifier"] = json.loads((path.parent / "grpo.json").read_text())
        recipes.setdefault(run["recipe"], {"settings": RECIPES.get(run["recipe"]), "runs": []})["runs"].append(run)
    for entry in recipes.values():
        tests = [r["test"]["mean"] for r in entry["runs"]]
        vals = [r["validation"]["mean"] for r in entry["runs"]]
        entry["spread"] = round(max(tests) - min(tests), 4)
        entry["validation_spread"] = round(max(vals) - min(vals), 4)
        moves = [r["grpo_verifier"]["minus_base"] for r in entry["runs"] if "grpo_verifier" in r]
        if moves:  # the bar: verifier GRPO ≥ +0.05 over every base, its CI above 0
            entry["grpo_moves_everywhere"] = all(m["mean"] >= 0.05 and m["ci95"][0] > 0 for m in moves)
    return recipes


def grpo_cell(run: dict[str, Any]) -> str:
    if "grpo_verifier" not in run:
        return "-"
    d = run["grpo_verifier"]["minus_base"]
    return f"{d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]"


def format_table(recipes: dict[str, Any]) -> str:
    lines = []
    for name, entry in recipes.items():
        lines.append(f"{name}: {entry['settings']}  test spread {entry['spread']:.3f}")
        rows = []
        for r in sorted(entry["runs"], key=lambda r: (r["threads"], r["seed"])):
            curve = " ".join(f"{c['validation']['mean']:.2f}" for c in r["curve"])
            t, v = r["test"], r["validation"]
            rows.append([str(r["seed"]), str(r["threads"]), f"{v['mean']:.3f}",
                         f"{t['mean']:.3f} [{t['ci95'][0]:.3f}, {t['ci95'][1]:.3f}]", str(t["n"]),
                         f"{r['wall_time_s']:.0f}", grpo_cell(r), curve])  # fmt: skip
        header = ["seed", "threads", "val", "test [95% CI]", "n", "train s", "GRPO − base, test",
                  f"val every {EVAL_EVERY} steps"]  # fmt: skip
        lines += [common.table(rows, header), ""]
    return "\n".join(lines)


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--recipe", default="old", help=f"one of {', '.join(RECIPES)}")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--threads_list", default="1,2", help="torch thread counts, each a run of its own")
    p.add_argument("--runs", default=str(RUNS), help="folder of the runs")
    p.add_argument("--grpo", action="store_true", help="also verifier GRPO from each base, as the demo runs it")
    p.add_argument("--table", action="store_true", help="pool the finished runs and write the result files")
    args = p.parse_args()
    root = Path(args.runs) / ("smoke" if args.smoke else "")
    if args.smoke:
        args.seeds, args.threads_list = "0", "1"
    if args.recipe not in RECIPES:
        raise SystemExit(f"--recipe must be one of {', '.join(RECIPES)}, got {args.recipe!r}")
    if not args.table:
        for threads in map(int, args.threads_list.split(",")):
            for seed in map(int, args.seeds.split(",")):
                run = train_and_evaluate(args.recipe, seed, threads, root, args.smoke)
                print(f"{args.recipe} seed {seed} threads {threads}: val {run['validation']['mean']:.3f} "
                      f"test {run['test']['mean']:.3f}", flush=True)  # fmt: skip
                if args.grpo:
                    moved = grpo_from(args.recipe, seed, threads, root, args.smoke)["minus_base"]
                    print(f"  verifier GRPO - base, test: {moved['mean']:+.3f} {moved['ci95']}", flush=True)
    if args.table or args.smoke:
        recipes = table(root)
        path = common.save("base_spread", {"eval_every": EVAL_EVERY, "recipes": recipes}, args)
        write_text(path.with_suffix(".txt"), format_table(recipes))
        print(format_table(recipes))


if __name__ == "__main__":
    main()
