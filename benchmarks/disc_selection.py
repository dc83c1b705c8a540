"""Keep the discriminator checkpoint that best separates held-out expert traces from perturbed ones? Candidate (e)
of the issue "the learned reward must add to what it starts from", measured as `method_check.py` measures the
others.

    .venv/bin/python benchmarks/disc_selection.py --task arith --method_check runs/method_check
    .venv/bin/python benchmarks/disc_selection.py --task countdown_gen --method_check runs/method_check_countdown

For each seed, the default variant's R-AIRL run of `method_check.py` is repeated (same seed, same budget: on CPU the
same run) keeping the discriminator every `--every` policy steps. Each kept discriminator is scored on a selection
set that no evaluation uses and that needs no answer labels: the first 128 *train* expert traces, each once clean and
once with one perturbation; separation = the AUC of the trace score (f, min over tokens) clean above perturbed. The
checkpoint with the best AUC is then evaluated exactly as `method_check.py` evaluates a run (rerank and localise on
validation, paired to the base likelihood), beside the last checkpoint (what the default keeps). Writes
`OUTPUT/selection.json` and a table.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import write_result  # noqa: E402
from method_check import FORMS, SIZE, SMOKE, summarise, train, use  # noqa: E402

from rairl.demo.results import format_summary  # noqa: E402
from rairl.inference.labelled import SourceSpec, injected, joined  # noqa: E402
from rairl.reward_model import RewardModel  # noqa: E402
from rairl.tasks import TaskArgs, get_task  # noqa: E402
from rairl.trainers.airl_state import STATE_DIR  # noqa: E402

VARIANT = "reference_zero"  # the default


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(score of a clean trace > score of a perturbed one), ties counted half (the Mann-Whitney statistic)."""
    greater = (positive[:, None] > negative[None, :]).mean()
    ties = (positive[:, None] == negative[None, :]).mean()
    return float(greater + ties / 2)


def kept_discriminator(run_dir: Path, step: int) -> Path:
    return run_dir / f"checkpoint-{step}" / STATE_DIR / "discriminator"


def separation(disc_dir: Path, traces: list) -> float:
    scored = RewardModel.from_pretrained(disc_dir, score_form="f").score(
        [t.meta["prompt"] for t in traces], [joined(t) for t in traces], aggregates=("min",)
    )
    scores = np.asarray(scored.traces["min"], dtype=float)
    clean = np.array([t.label == -1 for t in traces])
    return auc(scores[clean], scores[~clean])


def link(run_dir: Path, step: int) -> Path:
    """A folder that `method_check.use` reads like a run: `discriminator/` = checkpoint-STEP's discriminator."""
    folder = run_dir / f"selected-{step}"
    folder.mkdir(exist_ok=True)
    if not (folder / "discriminator").exists():
        os.symlink(kept_discriminator(run_dir, step).resolve(), folder / "discriminator")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="arith")
    parser.add_argument("--method_check", required=True, help="a method_check.py output folder (its base, samples)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--every", type=int, default=5, help="keep the discriminator every N policy steps")
    parser.add_argument("--base", default=None, help="the base policy (default: METHOD_CHECK/base)")
    parser.add_argument("--output", default=None, help="default: METHOD_CHECK/selection")
    parser.add_argument("--smoke", action="store_true", help="method_check's tiny budget: proves the script runs")
    args = parser.parse_args()
    source = Path(args.method_check)
    out = Path(args.output or source / "selection")
    size, base = SMOKE if args.smoke else SIZE, args.base or str(source / "base")
    task = get_task(TaskArgs(task=args.task, n_eval=size["n_eval"]))
    keep = ("--save_steps", str(args.every), "--save_total_limit", "1000")
    results: dict[str, Any] = {"task": args.task, "every": args.every, "auc": {}, "variants": {}}
    picked: dict[str, list[dict]] = {"last": [], "best_separation": []}
    for seed in map(int, args.seeds.split(",")):
        run_dir = out / f"seed{seed}"
        train(VARIANT, seed, base, run_dir, size, args.task, keep)
        selection = injected(task, SourceSpec(split="train", limit=size["n_eval"], seed=seed)).traces
        steps = sorted(int(p.name.split("-")[1]) for p in run_dir.glob("checkpoint-*"))
        aucs = {step: separation(kept_discriminator(run_dir, step), selection) for step in steps}
        results["auc"][seed] = aucs
        best = max(aucs, key=lambda s: (aucs[s], s))  # the later one on a tie
        print(f"seed {seed}: AUC by checkpoint {aucs}; best {best}", flush=True)
        samples = source / f"samples_seed{seed}.jsonl"
        for name, step in (("last", steps[-1]), ("best_separation", best)):
            folder = link(run_dir, step)
            picked[name].append(
                {"seed": seed, "step": step, "dir": str(folder), **use(folder, base, samples, seed, size, args.task)}
            )
    lines = [f"{'pick/form':<22} {'steps':<12} {'rerank vs likelihood':<32} {'inj exact vs ll':<32} nat exact vs ll"]
    for name, per_seed in picked.items():
        forms = {form: summarise(per_seed, form, size["n"]) for form in FORMS}
        results["variants"][name] = {"steps": [r["step"] for r in per_seed], **forms}
        for form, r in forms.items():
            loc = r["localize"]
            lines.append(
                f"{name + '/' + form:<22} {str(results['variants'][name]['steps']):<12} "
                f"{format_summary(r['rerank']['best_vs_likelihood'], True):<32} "
                f"{format_summary(loc[form + '_injected']['exact_vs_likelihood'], True):<32} "
                f"{format_summary(loc[form + '_natural']['exact_vs_likelihood'], True)}"
            )
    write_result(out / "selection.json", results)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
