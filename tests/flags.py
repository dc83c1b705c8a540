"""Command-line flags of the tests' tiny runs, in one place (importable: `pythonpath = ["tests"]`)."""

from __future__ import annotations

# the tiny policy: 32 wide, 1 layer, 2 heads, 256 positions
TINY = ["--hidden_size", "32", "--num_layers", "1", "--num_heads", "2", "--max_position_embeddings", "256"]


def rl_run(n_train: int, batch: int, generations: int, completion: int, *extra: str) -> list[str]:
    """Flags of a short `rairl grpo`/`airl` run of the tiny policy: `n_train` prompts, `batch` completions per step in
    groups of `generations`, `completion` tokens at most, no report, one thread; `extra` appended."""
    return [*TINY, "--n_train", str(n_train), "--per_device_train_batch_size", str(batch),
            "--num_generations", str(generations), "--max_completion_length", str(completion),
            "--report_to", "none", "--logging_steps", "1", "--threads", "1", *extra]  # fmt: skip
