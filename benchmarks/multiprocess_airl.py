"""R-AIRL on two CPU processes (DDP over gloo): after a few tiny `airl` steps both processes must hold the same
policy and the same discriminator, and both must have moved from their initial weights.

    .venv/bin/python benchmarks/multiprocess_airl.py            # all scenarios; exit status 1 on a mismatch
    .venv/bin/python benchmarks/multiprocess_airl.py --scenario passthrough

Each scenario launches `torch.distributed.run --nproc_per_node 2` on this file with ACCELERATE_USE_CPU=1 (Accelerate
then sets up a gloo process group; `accelerate launch --cpu` alone starts a single process unless MPI is
installed). The workers build the trainer through `rairl.trainers.airl`, train with `train_and_save` (the same
path as `rairl airl`), hash their own policy and discriminator weights, and gather the hashes; the main process
writes them to `result.json`, which this driver checks.

Scenarios:
    dense        dense rewards, replay buffer; process 1 generates at most half as many tokens, so the processes'
                 completions differ in width and the (B, T) rewards and masks are padded across processes
                 before the group statistics;
    passthrough  expert passthrough, step rewards, uneven widths, WGAN critic with gradient penalty: each
                 process appends the expert row of its group, and the token count of the grown batch is summed
                 over processes; the penalty's second forward runs outside the DDP wrapper.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TINY = ["--hidden_size", "32", "--num_layers", "1", "--num_heads", "2", "--max_position_embeddings", "256"]
COMMON = TINY + [
    "--n_train",
    "40",
    "--num_generations",
    "4",
    "--max_completion_length",
    "16",
    "--report_to",
    "none",
    "--logging_steps",
    "1",
    "--threads",
    "1",
    "--warmup_steps",
    "0",
    "--disc_warmup_steps",
    "1",
    "--max_steps",
    "2",
    "--save_steps",
    "100",
]
SCENARIOS = {
    "dense": ["--per_device_train_batch_size", "4", "--granularity", "dense", "--replay_size", "16", "--uneven"],
    "passthrough": [
        "--per_device_train_batch_size",
        "4",
        "--granularity",
        "step",
        "--expert_passthrough",
        "--uneven",
        "--disc_loss",
        "wgan_gp",
    ],
}


def digest(module) -> str:
    """sha256 over the names and bytes of a module's state dict."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def worker(argv: list[str]) -> None:
    from accelerate.utils import gather_object

    from rairl.config import parse_config
    from rairl.trainers import airl

    uneven = "--uneven" in argv
    config = parse_config(airl.Config, [a for a in argv if a != "--uneven"])
    trainer = airl.build_trainer(config)
    if uneven and trainer.accelerator.process_index == 1:
        trainer.generation_config.max_new_tokens = config.max_completion_length // 2  # narrower completions here
    policy, disc = trainer.model, trainer.reward_model.discriminator
    before = {"policy": digest(policy), "discriminator": digest(disc)}
    summary = airl.train_and_save(trainer, config)
    after = {"policy": digest(trainer.accelerator.unwrap_model(policy)), "discriminator": digest(disc)}
    rank = trainer.accelerator.process_index
    rows = gather_object(
        [
            {
                "rank": rank,
                "before": before,
                "after": after,
                "steps": summary["steps"],
                "world_size": trainer.accelerator.num_processes,
            }
        ]
    )
    accelerator = trainer.accelerator
    if accelerator.is_main_process:
        Path(config.output_dir, "result.json").write_text(json.dumps(rows, indent=2) + "\n")
    del trainer, policy, disc  # the DDP wrappers go before the process group, as in `airl.train`
    accelerator.free_memory()
    accelerator.end_training()


def check(rows: list[dict]) -> list[str]:
    """The problems in the gathered result; an empty list means the processes agree and trained."""
    problems = []
    if len(rows) != 2 or {r["world_size"] for r in rows} != {2}:
        problems.append(f"expected 2 processes, got {[(r['rank'], r['world_size']) for r in rows]}")
    for part in ("policy", "discriminator"):
        if len({r["after"][part] for r in rows}) != 1:
            problems.append(f"the processes hold different {part} weights")
        if any(r["after"][part] == r["before"][part] for r in rows):
            problems.append(f"the {part} did not move")
    if {r["steps"] for r in rows} != {2}:
        problems.append(f"steps: {[r['steps'] for r in rows]}")
    return problems


def launch(name: str, output_dir: Path, timeout: int) -> tuple[list[str], float]:
    env = dict(os.environ, ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        __file__,
        "--worker",
        *COMMON,
        *SCENARIOS[name],
        "--output_dir",
        str(output_dir),
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        log = Path(tempfile.gettempdir(), f"rairl-ddp-{name}.log")
        log.write_text(proc.stdout + proc.stderr)
        errors = [line for line in log.read_text().splitlines() if "Error" in line or "what()" in line][:10]
        return [f"exit status {proc.returncode} (full output: {log}); errors:", *errors], wall
    result = output_dir / "result.json"
    if not result.is_file():
        return [f"no {result} written"], wall
    problems = check(json.loads(result.read_text()))
    if not (output_dir / "discriminator").is_dir() or not (output_dir / "config.json").is_file():
        problems.append("the final policy or discriminator was not saved")
    return problems, wall


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        worker(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), action="append", help="default: all")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per scenario")
    args = parser.parse_args(argv)
    failed = False
    with tempfile.TemporaryDirectory(prefix="rairl-ddp-") as tmp:
        for name in args.scenario or sorted(SCENARIOS):
            problems, wall = launch(name, Path(tmp, name), args.timeout)
            status = "ok" if not problems else "FAILED"
            print(f"{name:<12} {status:<7} {wall:6.1f} s")
            for problem in problems:
                print(f"    {problem}")
            failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
