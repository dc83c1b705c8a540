"""The options of `rairl airl` (DESIGN §1.4–1.5), as TRL keeps a trainer's config beside it: `AIRLArgs` (R-AIRL's
own: the reward's settings, the advantage discount, the discriminator's schedule, replay, passthrough, health
checks), `AIRLConfig` (TRL's `GRPOConfig` plus the discriminator's and R-AIRL's options) and `Config` (with the task
and the policy). The reward's settings default to `RewardSettings`' own and are checked by it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rairl.models import ModelArgs
from rairl.reward_settings import RewardOptions, RewardSettings, settings_values
from rairl.tasks import TaskArgs
from rairl.trainers.discriminator_update import DiscriminatorArgs
from rairl.trainers.grpo import GRPOConfig

WARMUP_NEGATIVES = ("policy", "perturbed")
POLICY_NEGATIVES = ("all", "wrong")


@dataclass
class AIRLArgs(RewardOptions):
    """R-AIRL's options; the reward's settings (`RewardOptions`: granularity, interval, --reward_clip, score form, step
    reduction, aggregation discount) come from `RewardSettings`' own fields, its defaults and help."""

    RENAMED = {"gamma": "advantage_discount"}  # `aggregate_discount` is the other discount (scoring)

    advantage_discount: float = field(default=1.0, metadata={"help": "γ of the token advantages Σ_{k≥t} γ^{k−t} ã_k"})
    n_disc: int = field(default=1, metadata={"help": "discriminator updates per policy step that updates it"})
    disc_update_every: int = field(
        default=1, metadata={"help": "update D on every k-th policy step only (update ratio n_disc : k)"}
    )
    disc_warmup_steps: int = field(default=20, metadata={"help": "W: discriminator-only steps before the policy moves"})
    disc_warmup_negatives: str = field(
        default="policy",
        metadata={
            "help": "negatives of the warm-up: 'policy' (the initial policy's samples and perturbed experts) or "
            "'perturbed' (perturbed expert traces alone, the authors' newer recipe; no generation)"
        },
    )
    disc_warmup_perturbed: int = field(
        default=2, metadata={"help": "disc_warmup_negatives=perturbed: perturbed copies of each expert per step"}
    )
    disc_frozen: bool = field(default=False, metadata={"help": "never update D (no backward pass at all)"})
    disc_path: str | None = field(default=None, metadata={"help": "start from this saved discriminator directory"})
    perturbed_per_expert: int = field(default=1, metadata={"help": "perturbed expert traces per prompt as negatives"})
    disc_negatives: str = field(
        default="all",
        metadata={
            "help": "which policy samples the discriminator takes as negatives: 'all', or 'wrong' (those the task's "
            "verifier marks wrong: an upper bound that reads answer labels R-AIRL otherwise never sees)"
        },
    )
    replay_size: int = field(default=0, metadata={"help": "replay buffer capacity in samples (0: off)"})
    replay_per_step: int = field(default=16, metadata={"help": "replayed negatives per discriminator update"})
    expert_passthrough: bool = field(default=False, metadata={"help": "append the expert trace to its group"})
    outcome_reward_weight: float = field(default=0.0, metadata={"help": "weight of a verifier reward (0: none)"})
    monitor_window: int = field(default=10, metadata={"help": "steps over which decoupling/saturation are judged"})
    stop_on_warning: bool = field(default=False, metadata={"help": "stop training on a decoupling/saturation warning"})
    max_nonfinite_steps: int = field(
        default=10, metadata={"help": "stop after this many steps in a row with non-finite rewards (each is skipped)"}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self.reward_settings()  # checks them
        if self.disc_warmup_negatives not in WARMUP_NEGATIVES:
            raise ValueError(
                f"disc_warmup_negatives must be one of {WARMUP_NEGATIVES}, got {self.disc_warmup_negatives!r}"
            )
        if self.disc_negatives not in POLICY_NEGATIVES:
            raise ValueError(f"disc_negatives must be one of {POLICY_NEGATIVES}, got {self.disc_negatives!r}")
        if self.disc_warmup_perturbed < 1:
            raise ValueError(f"disc_warmup_perturbed must be >= 1, got {self.disc_warmup_perturbed}")
        if self.n_disc < 1 and not self.disc_frozen:
            raise ValueError(f"n_disc must be >= 1 (or set --disc_frozen), got {self.n_disc}")
        if self.disc_update_every < 1:
            raise ValueError(f"disc_update_every must be >= 1, got {self.disc_update_every}")
        if not 0.0 <= self.advantage_discount <= 1.0:
            raise ValueError(f"advantage_discount must lie in [0, 1], got {self.advantage_discount}")

    def reward_settings(self) -> RewardSettings:
        """The settings the trained reward is built and saved with."""
        return RewardSettings(**settings_values(self))


@dataclass
class AIRLConfig(DiscriminatorArgs, AIRLArgs, GRPOConfig):
    """`rairl grpo`'s `GRPOConfig` (TRL's, every option) plus the discriminator's and R-AIRL's options."""

    output_dir: str | None = field(
        default="runs/airl", metadata={"help": "run folder: checkpoints, logs, final models"}
    )


@dataclass
class Config(TaskArgs, ModelArgs, AIRLConfig):
    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mask_truncated_completions:
            raise ValueError(
                "mask_truncated_completions is not supported by R-AIRL: TRL then blanks a truncated sample's "
                "completion mask, and the discriminator, the token rewards and the group statistics need its tokens; "
                "leave it off (truncated samples are scored and trained on, as with TRL's default)"
            )
        if self.expert_passthrough and (self.gradient_accumulation_steps != 1 or self.beta != 0):
            raise ValueError(
                "expert_passthrough changes the batch size after generation: it needs gradient_accumulation_steps=1 "
                f"and beta=0 (got {self.gradient_accumulation_steps}, {self.beta})"
            )
        if self.expert_passthrough and self.per_device_train_batch_size % self.num_generations:
            raise ValueError(
                "expert_passthrough appends one expert per group on each process, so every process must hold whole "
                f"groups: per_device_train_batch_size ({self.per_device_train_batch_size}) must be a multiple of "
                f"num_generations ({self.num_generations})"
            )
