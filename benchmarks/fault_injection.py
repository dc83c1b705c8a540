"""Kill `rairl sft` and `rairl airl` with SIGKILL at random moments, resume each, and compare with an
uninterrupted run of the same seed (issue: crash-safe runs).

    .venv/bin/python benchmarks/fault_injection.py --kills 10                 # both commands, 10 kill points each
    .venv/bin/python benchmarks/fault_injection.py --commands sft --kills 1   # what the slow test runs

For each command: one uninterrupted reference run; then, per kill point, a fresh run killed (`kill -9`), then
`--resume_from_checkpoint auto` until it finishes. Odd kill points: after a uniformly random time within the
reference's wall time.
Even ones (the first included): inside the k-th checkpoint write (k random; checkpoints every 2 steps), the harness
holding each checkpoint's completion marker back for a second so that the kill lands after the files and before the
marker (counted as `inside_save`: a staging folder was left behind). Checked per kill point: the resumed run ends at
the reference's step count, and its final policy (and discriminator, for airl) weights equal the reference's within
`--atol` (the largest difference is reported: on CPU, with the RNG states restored, SFT resumes bit for bit; R-AIRL
samples, so a difference there would be reported, not hidden). Writes `--output` JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from rairl.trainers.common import SUMMARY_FILE

sys.path.insert(0, str(Path(__file__).parent))
from common import write_result  # noqa: E402

TINY = [
    "--hidden_size",
    "32",
    "--num_layers",
    "1",
    "--num_heads",
    "2",
    "--max_position_embeddings",
    "256",
    "--threads",
    "1",
    "--report_to",
    "none",
    "--logging_steps",
    "1",
    "--save_steps",
    "2",
    "--seed",
    "3",
]
COMMANDS = {
    "sft": ["sft", *TINY, "--n_train", "64", "--per_device_train_batch_size", "8", "--max_steps", "12"],
    "airl": [
        "airl",
        *TINY,
        "--n_train",
        "50",
        "--per_device_train_batch_size",
        "8",
        "--num_generations",
        "4",
        "--max_completion_length",
        "24",
        "--warmup_steps",
        "0",
        "--disc_warmup_steps",
        "1",
        "--max_steps",
        "8",
        "--replay_size",
        "16",
    ],
}


# Runs `rairl` with each checkpoint's completion marker held back for a moment (the files are written, the marker is
# not): a window in which the harness kills the process inside a checkpoint write. Only the harness does this.
SLOW_SAVE = """
import sys, time
import rairl.trainers.checkpoints as checkpoints
mark = checkpoints.mark_complete
def slow_mark(folder):
    time.sleep(1.0)
    mark(folder)
checkpoints.mark_complete = slow_mark
from rairl.cli import main
sys.exit(main(sys.argv[1:]))
"""


def rairl(
    args: list[str],
    out: Path,
    timeout: float | None = None,
    kill_after: float | None = None,
    kill_in_save: int | None = None,
) -> dict[str, Any]:
    """Run `rairl ARGS --output_dir OUT` in a subprocess; SIGKILL it after `kill_after` seconds, or inside its
    `kill_in_save`-th checkpoint write (once that save's staging folder holds the trainer state)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    entry = ["-c", SLOW_SAVE] if kill_in_save else ["-m", "rairl.cli"]
    cmd = [sys.executable, *entry, *args, "--output_dir", str(out)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
    try:
        if kill_after is not None:
            try:
                proc.wait(timeout=kill_after)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
        if kill_in_save:
            seen: set[str] = set()
            while proc.poll() is None:
                staging = [p for p in out.glob(".staging-checkpoint-*") if any(p.glob("*/trainer_state.json"))]
                seen.update(p.name for p in staging)
                if len(seen) >= kill_in_save and staging:
                    proc.send_signal(signal.SIGKILL)
                    break
                time.sleep(0.05)
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return {"rc": proc.returncode, "wall_s": time.perf_counter() - start, "stderr_tail": err[-2000:]}


def weights(out: Path, command: str) -> dict[str, torch.Tensor]:
    tensors = {f"policy.{k}": v for k, v in load_file(str(out / "model.safetensors")).items()}
    if command == "airl":
        tensors.update({f"disc.{k}": v for k, v in load_file(str(out / "discriminator" / "model.safetensors")).items()})
    return tensors


def max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys(), sorted(set(a) ^ set(b))
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def steps(out: Path) -> int:
    return int(json.loads((out / SUMMARY_FILE).read_text())["steps"])


def sweep(command: str, kills: int, root: Path, rng: random.Random, atol: float) -> dict[str, Any]:
    args = COMMANDS[command]
    ref_dir = root / f"{command}_reference"
    ref = rairl(args, ref_dir, timeout=900)
    assert ref["rc"] == 0, ref["stderr_tail"]
    reference = weights(ref_dir, command)
    saves = steps(ref_dir) // 2  # checkpoints every 2 steps
    points = []
    for i in range(kills):
        out = root / f"{command}_kill{i}"
        if i % 2 == 0:  # every other kill point lands inside a checkpoint write, the others at a random moment
            where = {"kill_in_save": rng.randint(1, saves)}
        else:
            where = {"kill_after": round(rng.uniform(0.05, 1.0) * ref["wall_s"], 2)}
        killed = rairl(args, out, timeout=900, **where)
        inside_save = any(out.glob(".staging-*")) if out.is_dir() else False
        resumed = rairl([*args, "--resume_from_checkpoint", "auto"], out, timeout=900)
        point = {
            **where,
            "killed": killed["rc"] == -signal.SIGKILL,
            "inside_save": inside_save,
            "resume_rc": resumed["rc"],
        }
        if resumed["rc"] == 0:
            point.update(steps=steps(out), max_abs_diff=max_diff(weights(out, command), reference))
            point["ok"] = point["steps"] == steps(ref_dir) and point["max_abs_diff"] <= atol
        else:
            point.update(ok=False, stderr_tail=resumed["stderr_tail"])
        points.append(point)
        print(command, i, point, flush=True)
    return {
        "reference_wall_s": round(ref["wall_s"], 1),
        "reference_steps": steps(ref_dir),
        "kill_points": len(points),
        "killed": sum(p["killed"] for p in points),
        "inside_save": sum(p["inside_save"] for p in points),
        "resumed_ok": sum(p["ok"] for p in points),
        "max_abs_diff": max((p.get("max_abs_diff", float("nan")) for p in points), default=None),
        "atol": atol,
        "points": points,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commands", default="sft,airl")
    parser.add_argument("--kills", type=int, default=10, help="kill points per command")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--atol", type=float, default=1e-6, help="largest weight difference accepted")
    parser.add_argument("--root", default="runs/fault_injection")
    parser.add_argument("--output", default="benchmarks/results/fault_injection.json")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    root = Path(args.root)
    results = {c: sweep(c, args.kills, root, rng, args.atol) for c in args.commands.split(",")}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    write_result(Path(args.output), results)
    for c, r in results.items():
        print(
            f"{c}: {r['resumed_ok']}/{r['kill_points']} kill points resumed to the reference "
            f"({r['inside_save']} inside a checkpoint write), max |Δw| {r['max_abs_diff']}"
        )
    return results


if __name__ == "__main__":
    main()
