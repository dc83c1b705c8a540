"""Peak memory: the peak resident set size (RSS) of `rairl demo` (default and --fast) and of one `rairl airl` run,
and which weights an R-AIRL trainer holds for its reference model.

    .venv/bin/python benchmarks/memory.py                     # every target; the full demo once (tens of minutes)
    .venv/bin/python benchmarks/memory.py --targets airl,demo_fast
    .venv/bin/python benchmarks/memory.py --smoke             # tiny settings

Each target runs as a child process; its peak RSS is the kernel's own count, `ru_maxrss` of `os.wait4` on that
child (the highest RSS the process ever had, sampled by nobody). Targets:

    python_imports  the libraries alone (`import rairl.commands.demo, rairl.trainers.airl`): the floor of every command
    demo_fast       `rairl demo --fast`
    airl            `rairl airl` at the demo's R-AIRL size (policy 128x4, 8 prompts x G=8, 10 steps)
    demo            `rairl demo` with its defaults (target: peak ≤ 2 GB)

Reference model (in process, no training): an R-AIRL trainer is built three ways and its weights counted.
With beta = 0 TRL holds no reference model at all; with beta > 0 and LoRA (lora_r > 0) it holds none
either (the reference is the base with the adapters disabled); with beta > 0 and full fine-tuning it loads a
second copy of the policy. Writes `benchmarks/results/memory.json`.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common

logger = logging.getLogger(__name__)

TARGET_GB = 2.0
ALL_TARGETS = ("python_imports", "demo_fast", "airl", "demo")
DEMO_SIZE = dict(hidden_size=128, num_layers=4, num_heads=4)  # the demo's policy
TINY_DEMO = [
    "--seeds",
    "0",
    "--base_steps",
    "2",
    "--policy_steps",
    "1",
    "--disc_warmup_steps",
    "0",
    "--n_eval",
    "4",
    "--n_samples",
    "2",
    "--num_generations",
    "2",
    "--prompts_per_step",
    "2",
    "--hidden_size",
    "32",
    "--num_layers",
    "1",
]
AIRL = [
    "--max_steps",
    "10",
    "--disc_warmup_steps",
    "2",
    "--per_device_train_batch_size",
    "64",
    "--num_generations",
    "8",
    "--report_to",
    "none",
    "--save_steps",
    "1000000",
    "--logging_steps",
    "5",
]
TINY_AIRL = [
    "--hidden_size",
    "32",
    "--num_layers",
    "1",
    "--num_heads",
    "2",
    "--n_train",
    "32",
    "--max_steps",
    "2",
    "--disc_warmup_steps",
    "1",
    "--per_device_train_batch_size",
    "4",
    "--num_generations",
    "2",
    "--max_completion_length",
    "8",
    "--report_to",
    "none",
    "--save_steps",
    "1000000",
]


def command(target: str, output_dir: Path, smoke: bool) -> list[str]:
    """The child's command line (this interpreter; `-m rairl.cli` is the `rairl` entry point)."""
    cli = [sys.executable, "-m", "rairl.cli"]
    commands = {
        "python_imports": [sys.executable, "-c", "import rairl.commands.demo, rairl.trainers.airl"],
        "demo_fast": [*cli, "demo", "--fast", "--output_dir", str(output_dir)],
        "airl": [*cli, "airl", "--output_dir", str(output_dir), *(TINY_AIRL if smoke else AIRL)],
        "demo": [*cli, "demo", "--output_dir", str(output_dir), *(TINY_DEMO if smoke else [])],
    }
    if target not in commands:
        raise ValueError(f"unknown target {target!r}; known: {sorted(commands)}")
    return commands[target]


def peak_rss(cmd: list[str], log: Path) -> tuple[float, float]:
    """Run `cmd` to the end; its peak RSS in MiB (kernel `ru_maxrss`) and its wall time in seconds."""
    start = time.perf_counter()
    with log.open("w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=common.ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise RuntimeError(f"{' '.join(cmd)} exited with status {proc.returncode}; last lines:\n{tail}")
    return usage.ru_maxrss / 1024, wall  # ru_maxrss is in KiB on Linux


def measure(target: str, repeats: int, smoke: bool) -> dict[str, Any]:
    peaks, walls = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix=f"rairl-mem-{target}-") as tmp:
            cmd = command(target, Path(tmp, "run"), smoke)
            peak, wall = peak_rss(cmd, Path(tmp, "log.txt"))
        peaks.append(peak)
        walls.append(wall)
        logger.info("%s: peak %.0f MiB in %.0f s", target, peak, wall)
    shown = [c if c != sys.executable else "python" for c in command(target, Path("OUT"), smoke)]
    return {
        "command": " ".join(shown),
        "peak_rss_mib": common.summarize(peaks, digits=1),
        "wall_s": common.summarize(walls, digits=1),
    }


def _params(module) -> list:
    return [] if module is None else list(module.parameters())


def reference_facts(smoke: bool) -> list[dict[str, Any]]:
    """Build R-AIRL trainers (kl = 0; kl > 0 with LoRA; kl > 0 full) and count the weights each holds."""
    from rairl.trainers import airl

    size = dict(hidden_size=32, num_layers=1, num_heads=2) if smoke else DEMO_SIZE
    # the LoRA case with a fresh half-width discriminator: the case is about the reference model, not D
    tiny_disc = dict(
        disc_model="tiny",
        disc_hidden_size=size["hidden_size"] // 2,
        disc_num_layers=size["num_layers"],
        disc_num_heads=size["num_heads"],
    )
    cases = {
        "kl0": dict(beta=0.0),
        "kl_lora": dict(beta=0.05, lora_r=8, **tiny_disc),
        "kl_full": dict(beta=0.05),
    }
    facts = []
    for name, options in cases.items():
        with tempfile.TemporaryDirectory(prefix="rairl-mem-ref-") as tmp:
            cfg = airl.Config(
                **size,
                n_train=32,
                per_device_train_batch_size=4,
                num_generations=2,
                output_dir=tmp,
                report_to="none",
                disc_warmup_steps=0,
                **options,
            )
            trainer = airl.build_trainer(cfg)
            policy, ref = _params(trainer.model), _params(trainer.ref_model)
            disc = _params(trainer.reward_model.discriminator)
            storages = {p.untyped_storage().data_ptr(): p.untyped_storage().nbytes() for p in policy + ref + disc}
            facts.append(
                {
                    "case": name,
                    "options": options,
                    "policy_class": type(trainer.model).__name__,
                    "ref_model_is_none": trainer.ref_model is None,
                    "policy_weight_copies": 1 + (trainer.ref_model is not None),
                    "params": {
                        "policy_total": sum(p.numel() for p in policy),
                        "policy_trainable": sum(p.numel() for p in policy if p.requires_grad),
                        "ref_model": sum(p.numel() for p in ref),
                        "discriminator": sum(p.numel() for p in disc),
                    },
                    "unique_weight_mib": round(sum(storages.values()) / 2**20, 2),
                }
            )
            del trainer
    return facts


def main(argv: list[str] | None = None) -> None:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument(
        "--targets", default=None, help=f"comma-separated, of {','.join(ALL_TARGETS)} (default: all; --smoke: airl)"
    )
    p.add_argument("--repeats", type=int, default=5, help="runs per target (the full demo: --demo_repeats)")
    p.add_argument("--demo_repeats", type=int, default=1, help="runs of the full demo (each takes tens of minutes)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    targets = (args.targets or ("airl" if args.smoke else ",".join(ALL_TARGETS))).split(",")
    repeats = 1 if args.smoke else args.repeats
    results = {}
    for target in targets:
        n = args.demo_repeats if target == "demo" and not args.smoke else repeats
        results[target] = measure(target, n, args.smoke)
    common.set_threads(args.threads)
    facts = reference_facts(args.smoke)
    payload: dict[str, Any] = {"targets": results, "reference_model": facts, "target_demo_peak_gb": TARGET_GB}
    if "demo" in results:
        payload["demo_peak_gb"] = round(results["demo"]["peak_rss_mib"]["median"] / 1024, 3)
        payload["demo_within_target"] = payload["demo_peak_gb"] <= TARGET_GB
    path = common.save("memory", payload, args)
    rows = [[t, common.fmt(r["peak_rss_mib"], "MiB", 0), common.fmt(r["wall_s"], "s", 0)] for t, r in results.items()]
    print(common.table(rows, ["target", "peak RSS median [min-max]", "wall"]))
    rows = [
        [
            f["case"],
            str(f["ref_model_is_none"]),
            str(f["policy_weight_copies"]),
            f["params"]["policy_trainable"],
            f["params"]["ref_model"],
            f["unique_weight_mib"],
        ]
        for f in facts
    ]
    print(common.table(rows, ["case", "ref_model None", "policy copies", "trainable", "ref params", "weights MiB"]))
    print(f"saved {path}")


if __name__ == "__main__":
    main()
