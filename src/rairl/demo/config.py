"""The demo's settings: one dataclass, light to import (the demo's parent process only schedules jobs)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

METHODS = ("base", "sft", "airl_dense", "airl_outcome", "grpo_verifier")
TRAINED = METHODS[1:]
RL = ("airl_dense", "airl_outcome", "grpo_verifier")
# The policies whose OOD samples the transfer figures read (reranking, natural errors); the others are evaluated
# greedily on OOD only, which saves about a minute of the demo's wall time (their OOD pass@k is not reported).
SAMPLED_OOD = ("sft", "airl_dense")
GENERATED = ("arith", "countdown_gen")  # tasks with seeded train/validation/test/ood splits


@dataclass
class DemoConfig:
    output_dir: str = field(default="runs/demo", metadata={"help": "run folder"})
    task: str = field(default="arith", metadata={"help": "a generated task: arith or countdown_gen"})
    seeds: str = field(default="0,1,2", metadata={"help": "comma-separated seeds"})
    fast: bool = field(default=False, metadata={"help": "a ~2-minute smoke run: same outputs, weaker figures"})
    base_steps: int = field(default=2000, metadata={"help": "most warm-start SFT steps of the base policy"})
    base_fraction: float = field(default=1.0, metadata={"help": "fraction of the demonstrations the base sees"})
    base_schedule_cycles: float = field(
        default=0.3785,
        metadata={
            "help": "cosine cycles of the base's learning rate over base_steps (0.5: annealed to 0; 0.3785: ends at "
            "14%% of its peak)"
        },
    )
    base_stop_at: float = field(
        default=0.6,
        metadata={
            "help": "the base stops at the first check (every base_validation_every steps) whose greedy validation "
            "accuracy reaches this: every seed and thread count lands at the same accuracy, with room left for RL "
            "(0: train all base_steps; benchmarks/base_spread.py)"
        },
    )
    base_validation_every: int = field(default=100, metadata={"help": "steps between the base's validation checks"})
    policy_steps: int = field(default=30, metadata={"help": "policy optimizer steps of the RL methods"})
    sft_steps: int = field(
        default=120,
        metadata={"help": "continued SFT's optimizer steps (its best on validation: benchmarks/training_curves.py)"},
    )
    sft_learning_rate: float = field(
        default=1e-3,
        metadata={"help": "continued SFT's learning rate, constant (chosen on validation: training_curves.py)"},
    )
    rl_learning_rate: float = field(
        default=5e-5, metadata={"help": "R-AIRL and GRPO policy learning rate (chosen on validation: grpo_sweep.py)"}
    )
    validation_points: int = field(
        default=6,
        metadata={"help": "greedy validation evaluations in each trained method's run; its best step is kept"},
    )
    num_generations: int = field(default=8, metadata={"help": "GRPO/R-AIRL group size"})
    prompts_per_step: int = field(default=8, metadata={"help": "prompts per policy step (batch = prompts × G = 64)"})
    disc_warmup_steps: int = field(default=20, metadata={"help": "R-AIRL discriminator warm-up steps"})
    n_eval: int = field(default=128, metadata={"help": "questions per evaluation split"})
    n_samples: int = field(default=8, metadata={"help": "N: samples per question for pass@k and reranking"})
    hidden_size: int = field(default=128, metadata={"help": "policy width"})
    num_layers: int = field(default=4, metadata={"help": "policy layers"})
    rl_micro_batch: int = field(
        default=16,
        metadata={"help": "samples per forward/backward of the RL runs, at most (gradient accumulation: the step "
                  "still takes prompts × G; a worker's memory stays under 1 GB)"},
    )  # fmt: skip
    threads: int = field(
        default=1,
        metadata={"help": "torch threads of every job, the base included: fixed, so that one machine gives one "
                  "result whatever its core count (floats sum in another order at another count)"},
    )  # fmt: skip
    workers: int = field(
        default=0, metadata={"help": "processes running the demo's jobs (0: usable cores // threads, at least 1)"}
    )

    def __post_init__(self) -> None:
        if self.fast:
            # Same pipeline and outputs, about two minutes on 2 cores; figures are weak by design.
            self.seeds = "0,1" if self.seeds == "0,1,2" else self.seeds
            self.base_steps, self.policy_steps, self.sft_steps, self.disc_warmup_steps = 60, 3, 3, 2
            self.base_fraction, self.base_validation_every = 0.2, 20
            self.n_eval, self.n_samples, self.num_generations, self.prompts_per_step = 16, 4, 4, 4
            self.hidden_size, self.num_layers = 64, 2
        if self.task not in GENERATED:
            raise ValueError(f"--task must be a generated task ({', '.join(GENERATED)}), got {self.task!r}")
        if not self.seed_list:
            raise ValueError(f"--seeds must list at least one seed, got {self.seeds!r}")
        if not 0 < self.base_fraction <= 1:
            raise ValueError(f"base_fraction must be in (0, 1], got {self.base_fraction}")
        if self.threads < 1:
            raise ValueError(f"threads must be at least 1 (a fixed count), got {self.threads}")
        if self.validation_points < 1:
            raise ValueError(f"validation_points must be at least 1, got {self.validation_points}")
        if self.rl_micro_batch < 1:
            raise ValueError(f"rl_micro_batch must be at least 1, got {self.rl_micro_batch}")
        if not 0 <= self.base_stop_at <= 1 or self.base_validation_every < 1:
            raise ValueError(f"base_stop_at must be in [0, 1] and base_validation_every >= 1, got {self.base_stop_at}, "
                             f"{self.base_validation_every}")  # fmt: skip
        if not 0 < self.base_schedule_cycles <= 0.5:
            raise ValueError(
                f"base_schedule_cycles must be in (0, 0.5] (0.5 anneals to 0), got {self.base_schedule_cycles}"
            )

    @property
    def micro_batch(self) -> int:
        """Samples per forward/backward: gcd(prompts × G, `rl_micro_batch`), a divisor of the step's batch, so
        that gradient accumulation covers it exactly."""
        return math.gcd(self.prompts_per_step * self.num_generations, self.rl_micro_batch)

    @property
    def seed_list(self) -> list[int]:
        return [int(s) for s in self.seeds.split(",") if s.strip()]
