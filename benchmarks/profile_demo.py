"""Profile one phase of `rairl demo`: its wall time over repeats (the before/after figure of a fix) and its top
hotspots under cProfile (Python functions) and torch.profiler (tensor operators).

    .venv/bin/python benchmarks/profile_demo.py --phase airl_dense --base runs/demo/base
    .venv/bin/python benchmarks/profile_demo.py --phase evaluate --demo_results runs/demo/results.json
    .venv/bin/python benchmarks/profile_demo.py --smoke

The phase runs exactly as the demo runs it: the demo's own `train_base`, `train_methods` and `evaluate` are called
with a phase runner in place of the demo's timer, which runs the chosen phase and skips the others. Phases:
`base` (warm-start SFT), `sft`, `airl_dense`, `airl_outcome`, `grpo_verifier` (seed 0, from the base policy) and
`evaluate` (greedy answers and samples of the base policy on test and OOD). The base policy is `--base` (a
trained demo's `runs/demo/base`: samples of a trained policy have realistic lengths) or, if none is given, trained
first with the demo's settings. `--demo_results` prints a finished demo's phases, slowest first.

Order: `--repeats` plain timed runs (median and spread), then one run under cProfile, then one under
torch.profiler (`--no_torch_profiler` skips it); every run writes to a fresh folder. Writes
`benchmarks/results/profile_demo_<phase>.json` and the two full tables beside it as `.txt`.
"""

from __future__ import annotations

import cProfile
import dataclasses
import io
import json
import logging
import pstats
import tempfile
from pathlib import Path
from typing import Any

import common

TRAINED = ("sft", "airl_dense", "airl_outcome", "grpo_verifier")
PHASES = ("base", *TRAINED, "evaluate")
SMOKE = dict(
    seeds="0",
    base_steps=2,
    policy_steps=1,
    disc_warmup_steps=0,
    n_eval=4,
    n_samples=2,
    num_generations=2,
    prompts_per_step=2,
    rl_micro_batch=4,
    hidden_size=32,
    num_layers=1,
)
TOP = 25


def run_phase(phase: str, demo_config, base: Path | None, out: Path, wrap) -> None:
    """One run of `phase` as the demo runs it (its own functions), into `out`, with `wrap(call)` around it."""
    from rairl.demo import runs

    if phase == "base":
        wrap(lambda: runs.train_base(demo_config, str(out)))
    elif phase in TRAINED:
        seed = demo_config.seed_list[0]
        wrap(lambda: runs.train_method(demo_config, str(base), seed, phase, str(out / phase)))
    else:
        wrap(lambda: runs.evaluate(demo_config, str(base), "base", str(out / "eval"), 0))


def cprofile_table(prof: cProfile.Profile, sort: str) -> tuple[str, list[dict[str, Any]]]:
    stream = io.StringIO()
    stats = pstats.Stats(prof, stream=stream).strip_dirs().sort_stats(sort)
    stats.print_stats(TOP)
    rows = []
    column = 2 if sort == "tottime" else 3  # stats values: (primitive calls, calls, own time, cumulative time, callers)
    for (file, line, func), (_, nc, tt, ct, _) in sorted(stats.stats.items(), key=lambda kv: -kv[1][column])[:TOP]:
        rows.append(
            {"function": f"{file}:{line}({func})", "calls": nc, "tottime_s": round(tt, 4), "cumtime_s": round(ct, 4)}
        )
    return stream.getvalue(), rows


def torch_table(prof) -> tuple[str, list[dict[str, Any]]]:
    averages = prof.key_averages()
    text = averages.table(sort_by="self_cpu_time_total", row_limit=TOP)
    rows = [
        {
            "op": e.key,
            "calls": e.count,
            "self_cpu_ms": round(e.self_cpu_time_total / 1e3, 2),
            "cpu_total_ms": round(e.cpu_time_total / 1e3, 2),
        }
        for e in sorted(averages, key=lambda e: -e.self_cpu_time_total)[:TOP]
    ]
    return text, rows


def demo_ranking(path: Path) -> list[tuple[str, float]]:
    phases = json.loads(path.read_text())["jobs_s"]
    return sorted(phases.items(), key=lambda kv: -kv[1])


def main(argv: list[str] | None = None) -> None:
    from rairl.demo import runs
    from rairl.demo.config import DemoConfig

    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--phase", default="airl_dense", choices=PHASES)
    p.add_argument("--base", default=None, help="a trained base policy (default: train one with the demo's settings)")
    p.add_argument("--fast", action="store_true", help="the demo's --fast settings")
    p.add_argument("--policy_steps", type=int, default=None, help="override the demo's policy steps (shorter runs)")
    p.add_argument("--disc_warmup_steps", type=int, default=None, help="override the demo's discriminator warm-up")
    p.add_argument("--base_steps", type=int, default=None, help="override the demo's warm-start steps (phase base)")
    p.add_argument("--repeats", type=int, default=5, help="plain timed runs of the phase")
    p.add_argument("--no_torch_profiler", action="store_true")
    p.add_argument("--demo_results", default=None, help="a finished demo's results.json: print its phases by time")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    overridable = ("policy_steps", "disc_warmup_steps", "base_steps")
    overrides = {k: getattr(args, k) for k in overridable if getattr(args, k) is not None}
    demo_config = DemoConfig(fast=args.fast, **overrides, **(SMOKE if args.smoke else {}))
    repeats = 1 if args.smoke else args.repeats
    common.set_threads(args.threads)
    payload: dict[str, Any] = {"phase": args.phase, "demo_config": dataclasses.asdict(demo_config)}
    if args.demo_results:
        payload["demo_phases_slowest_first"] = demo_ranking(Path(args.demo_results))
        print(common.table([[n, f"{s:.1f}"] for n, s in payload["demo_phases_slowest_first"]], ["demo phase", "s"]))

    with tempfile.TemporaryDirectory(prefix="rairl-profile-") as tmp:
        base = Path(args.base) if args.base else None
        if base is None and args.phase != "base":
            runs.train_base(demo_config, str(Path(tmp, "setup")))
            base = Path(tmp, "setup", "base")
        payload["base"] = str(args.base) if args.base else "trained by this script with the demo's settings"

        walls = []
        for i in range(repeats):
            walls.append(
                common.timed(
                    lambda i=i: run_phase(args.phase, demo_config, base, Path(tmp, f"run{i}"), lambda call: call())
                )
            )
        payload["wall_s"] = common.summarize(walls, digits=2)

        prof = cProfile.Profile()
        run_phase(args.phase, demo_config, base, Path(tmp, "cprofile"), lambda call: prof.runcall(call))
        tables = {}
        tables["cprofile_tottime"], payload["cprofile_top_tottime"] = cprofile_table(prof, "tottime")
        tables["cprofile_cumtime"], payload["cprofile_top_cumtime"] = cprofile_table(prof, "cumulative")

        if not args.no_torch_profiler:
            import torch
            import torch.profiler as tp

            activities = [tp.ProfilerActivity.CPU] + ([tp.ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
            holder = {}

            def under_torch_profiler(call):
                with tp.profile(activities=activities) as torch_prof:
                    call()
                holder["prof"] = torch_prof

            run_phase(args.phase, demo_config, base, Path(tmp, "torch_profiler"), under_torch_profiler)
            tables["torch_profiler"], payload["torch_top_self_cpu"] = torch_table(holder["prof"])

    path = common.save(f"profile_demo_{args.phase}", payload, args)
    text = "\n\n".join(f"== {name} ==\n{t}" for name, t in tables.items())
    txt = path.with_suffix(".txt")
    from rairl.io import write_text

    write_text(txt, text + "\n")
    print(f"phase {args.phase}: {common.fmt(payload['wall_s'])} over {repeats} runs")
    rows = [
        [r["function"][:90], r["calls"], f"{r['tottime_s']:.3f}", f"{r['cumtime_s']:.3f}"]
        for r in payload["cprofile_top_tottime"][:15]
    ]
    print(common.table(rows, ["function (by own time)", "calls", "own s", "cum s"]))
    if "torch_top_self_cpu" in payload:
        rows = [[r["op"][:60], r["calls"], f"{r['self_cpu_ms']:.1f}"] for r in payload["torch_top_self_cpu"][:10]]
        print(common.table(rows, ["torch op (by self CPU)", "calls", "self ms"]))
    print(f"saved {path} and {txt}")


if __name__ == "__main__":
    main()
