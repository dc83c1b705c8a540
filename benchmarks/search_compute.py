"""Test-time compute with the learned process reward (issue 22): best-of-N, step-level beam search and DVTS, each
with the learned reward and with the policy's likelihood as the scorer, accuracy against generated tokens.

    .venv/bin/python benchmarks/search_compute.py --policy runs/demo/base \\
        --reward_model runs/demo/seed0/airl_dense/discriminator           # ~1 h on 2 cores
    .venv/bin/python benchmarks/search_compute.py --smoke                  # seconds; its figures mean nothing

1. The step aggregation of each scorer (last | min | mean) is chosen on the **validation** split: beam search at
   N = 8 on `--n_val` questions, the most accurate aggregation kept (ties: the order last, min, mean).
2. On test (2-4 steps, as trained) and OOD (5-6 steps): `rairl search` with every method, N in `--n` (M = 4) and
   both scorers, `--n_eval` questions each; accuracy with its 95% CI, tokens generated and traces scored per
   question; paired differences (per question) of beam and DVTS against best-of-N with the same scorer and N.
3. A plot of accuracy against tokens per question (`results/search_compute.png`) and the table
   (`results/search_compute.{json,txt}`).
Every `rairl search` is a job on `--workers` single-thread processes (`rairl.jobs`); a finished one is read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, SMOKE_RESULTS, flags, run_once, write_result  # noqa: E402

from rairl.demo.results import format_summary  # noqa: E402
from rairl.evaluation.metrics import paired_diff  # noqa: E402
from rairl.inference.search import METHODS  # noqa: E402
from rairl.io import atomic_path, write_json  # noqa: E402
from rairl.jobs import Job, run_jobs, usable_cores  # noqa: E402
from rairl.report.plots import search_plot  # noqa: E402
from rairl.scores import SEARCH_AGGREGATES as AGGREGATES  # noqa: E402

SCORERS = ("reward", "likelihood")


def search(out: Path, policy: str, reward_model: str, split: str, n: str, n_eval: int, scorer: str, how: str,
           methods: str = ",".join(METHODS)) -> Path:  # fmt: skip
    """One `rairl search` (a job); returns its folder."""
    argv = ["search", *flags(policy=policy, reward_model=reward_model, split=split, n=n, m=4, limit=n_eval,
                             scorers=scorer, step_aggregate=how, methods=methods, output_dir=out)]  # fmt: skip
    run_once(out / "metrics.json", argv)
    return out


def rows_of(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "search.jsonl").open()]


def choose_aggregates(args, out: Path) -> dict[str, Any]:
    """Stage 1: per scorer, beam search at N = 8 on validation with each aggregation; the most accurate kept."""
    jobs = [
        Job(f"val/{scorer}/{how}", search, dict(out=out / "validation" / f"{scorer}_{how}", policy=args.policy,
            reward_model=args.reward_model, split="validation", n="8", n_eval=args.n_val, scorer=scorer, how=how,
            methods="beam"), log=out / "validation" / f"{scorer}_{how}.log")
        for scorer in SCORERS
        for how in AGGREGATES
    ]  # fmt: skip
    done, _ = run_jobs(jobs, args.workers, desc="choose aggregation")
    chosen, accuracy = {}, {}
    for scorer in SCORERS:
        acc = {how: sum(r["correct"] for r in rows_of(done[f"val/{scorer}/{how}"])) / args.n_val for how in AGGREGATES}
        accuracy[scorer] = acc
        chosen[scorer] = max(AGGREGATES, key=lambda how: (acc[how], -list(AGGREGATES).index(how)))
    return {"chosen": chosen, "validation_accuracy": accuracy}


def summarise(folders: dict[tuple[str, str, int], Path]) -> dict[str, Any]:
    """Per split, scorer, method and N: accuracy, tokens and scorer calls per question; paired gains over
    best-of-N."""
    out: dict[str, Any] = {}
    for (split, scorer, n), folder in folders.items():
        metrics = json.loads((folder / "metrics.json").read_text())["results"]
        by_method = {m: [r for r in rows_of(folder) if r["method"] == m] for m in METHODS}
        for method in METHODS:
            entry = metrics[f"{method}/{scorer}/N={n}"]
            if method != "best_of_n":
                ours = [float(r["correct"]) for r in by_method[method]]
                ref = [float(r["correct"]) for r in by_method["best_of_n"]]
                entry["minus_best_of_n"] = paired_diff(ours, ref)
            out.setdefault(split, {}).setdefault(scorer, {}).setdefault(method, {})[str(n)] = entry
    return out


def table(summary: dict[str, Any]) -> str:
    lines = [f"{'split':<5} {'scorer':<10} {'method':<10} {'N':>3} {'accuracy [95% CI] n':<30} {'tokens/q':>8} "
             f"{'scored/q':>8}  vs best-of-N (paired)"]  # fmt: skip
    for split, by_scorer in summary.items():
        for scorer, by_method in by_scorer.items():
            for method, by_n in by_method.items():
                for n, e in by_n.items():
                    gain = format_summary(e["minus_best_of_n"], True) if "minus_best_of_n" in e else ""
                    lines.append(
                        f"{split:<5} {scorer:<10} {method:<10} {n:>3} {format_summary(e['accuracy'], False):<30} "
                        f"{e['tokens_per_question']:>8.1f} {e['scorer_calls_per_question']:>8.1f}  {gain}"
                    )
    return "\n".join(lines)


def plot(summary: dict[str, Any], path: Path) -> None:
    """`rairl.report.plots.search_plot` of the summary: a panel per split, a line per method and scorer."""
    panels = {
        f"{split}: N = {', '.join(next(iter(next(iter(by_scorer.values())).values())))}": {
            f"{method}, {scorer}": [(e["tokens_per_question"], e["accuracy"]) for e in by_n.values()]
            for scorer, by_method in by_scorer.items()
            for method, by_n in by_method.items()
        }
        for split, by_scorer in summary.items()
    }
    with atomic_path(path) as tmp:
        tmp.write_bytes(search_plot(panels))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policy", default="runs/demo/base")
    p.add_argument("--reward_model", default="runs/demo/seed0/airl_dense/discriminator")
    p.add_argument("--n", default="4,8,16,32", help="budgets N (M = 4 divides each)")
    p.add_argument("--n_eval", type=int, default=128, help="questions per split")
    p.add_argument("--n_val", type=int, default=64, help="validation questions for the aggregation's choice")
    p.add_argument("--splits", default="test,ood")
    p.add_argument("--workers", type=int, default=usable_cores())
    p.add_argument("--output", default="runs/search_compute")
    p.add_argument("--smoke", action="store_true", help="a tiny setting that only proves the script runs")
    args = p.parse_args()
    out = Path(args.output + ("_smoke" if args.smoke else ""))
    if args.smoke:
        args.n, args.n_eval, args.n_val = "4", 2, 2
        if not Path(args.reward_model).is_dir():
            raise SystemExit(f"--smoke needs a saved policy and reward model: {args.reward_model} is not a folder")
    choice = choose_aggregates(args, out)
    jobs = []
    for split in args.splits.split(","):
        for scorer in SCORERS:
            for n in (int(x) for x in args.n.split(",")):
                name = f"{split}/{scorer}/{n}"
                folder = out / split / f"{scorer}_N{n}"
                kwargs = dict(out=folder, policy=args.policy, reward_model=args.reward_model, split=split, n=str(n),
                              n_eval=args.n_eval, scorer=scorer, how=choice["chosen"][scorer])  # fmt: skip
                jobs.append(Job(name, search, kwargs, log=folder.with_suffix(".log")))
    jobs.sort(key=lambda j: -int(j.name.rsplit("/", 1)[1]))  # the largest budgets first: the pool ends together
    done, seconds = run_jobs(jobs, args.workers, desc="search")
    folders = {tuple(name.split("/")[:2]) + (int(name.rsplit("/", 1)[1]),): path for name, path in done.items()}
    summary = summarise(folders)
    results = {"settings": vars(args), **choice, "summary": summary, "job_seconds": seconds}
    dest = SMOKE_RESULTS if args.smoke else RESULTS
    write_json(out / "results.json", results)
    write_result(dest / "search_compute.json", results)
    text = table(summary)
    (dest / "search_compute.txt").write_text(text + "\n")
    plot(summary, dest / "search_compute.png")
    print(f"aggregation chosen on validation: {choice['chosen']}")
    print(text)


if __name__ == "__main__":
    main()
