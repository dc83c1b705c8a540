"""The discriminator update of R-AIRL (DESIGN §1.2): experts against the policy's samples of this step, perturbed
expert traces (hard negatives) and a replay buffer of earlier samples. `DiscriminatorUpdater` holds what the update
owns (the discriminator, its optimiser, the replay buffer, the RNG) and saves and restores it for checkpoints; the
trainer only hands it each step's samples; the loss comes by name (`--disc_loss`) from
`rairl.discriminator_losses.DISC_LOSSES`. `DiscriminatorArgs` holds every `--disc_*` option of a run.
"""

from __future__ import annotations

import json
import random
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from rairl.discriminator import HEAD_INITS, LIKELIHOOD_FROM, Discriminator
from rairl.discriminator_losses import DISC_LOSSES, LossInputs, accuracy
from rairl.options import Options
from rairl.reward_model import RewardModel
from rairl.rewards.perturb import perturb
from rairl.traces import TraceBatch, build_batch


@dataclass
class DiscriminatorArgs(Options):
    """The `--disc_*` options of an R-AIRL run: how the network is built (`trainers.airl.build_reward_model`),
    then how it trains (`DiscriminatorUpdater`, `discriminator_step`)."""

    # ---- the network
    disc_model: str = field(
        default="policy",
        metadata={
            "help": "'policy' (start from the policy's weights), 'tiny' (fresh tiny model) or a causal LM path/id"
        },
    )
    disc_likelihood: bool = field(default=True, metadata={"help": "read an LM's token log-probs ℓ_t (a·ℓ_t)"})
    disc_likelihood_from: str = field(
        default="reference",
        metadata={"help": "ℓ_t from 'reference' (a frozen copy of the initial LM) or 'backbone' (the trained one)"},
    )
    disc_head_init: str = field(
        default="zero", metadata={"help": "'zero' (s_t = 0 at start) or 'running_min' (a_2 = 1, w random)"}
    )
    disc_hidden_size: int = field(default=128, metadata={"help": "disc_model=tiny: width"})
    disc_num_layers: int = field(default=4, metadata={"help": "disc_model=tiny: layers"})
    disc_num_heads: int = field(default=4, metadata={"help": "disc_model=tiny: attention heads"})
    disc_temperature: float = field(default=1.0, metadata={"help": "reward = s_t / temperature"})
    disc_batch_size: int = field(default=32, metadata={"help": "traces per scoring forward pass"})
    disc_lora_r: int = field(
        default=0, metadata={"help": "LoRA rank of the discriminator's backbone (peft); 0: all weights train"}
    )
    disc_lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha of the discriminator's backbone"})
    disc_share_base: bool = field(
        default=True,
        metadata={
            "help": "with LoRA on both sides (--lora_r, --disc_lora_r) and --disc_model policy: one copy of the base "
            "serves the policy, the discriminator (a second adapter) and the reference (adapters off); one process"
        },
    )
    disc_lora_target_modules: list[str] = field(
        default_factory=lambda: ["all-linear"],
        metadata={"help": "module names LoRA adapts in the discriminator's backbone ('all-linear': every linear)"},
    )
    # ---- its update
    disc_lr: float = field(default=1e-4, metadata={"help": "discriminator backbone learning rate"})
    disc_head_lr: float = field(default=1e-2, metadata={"help": "learning rate of the head (w, a, b): fresh weights"})
    disc_loss: str = field(default="bce", metadata={"help": "bce | wgan_gp | nnpu (policy samples as unlabeled)"})
    disc_pu_prior: float = field(
        default=0.3, metadata={"help": "nnpu: share π of the policy's samples taken to be expert-like (≈ its pass@1)"}
    )
    disc_smoothing: float = field(default=0.1, metadata={"help": "label smoothing ε: targets 1-ε/2 and ε/2"})
    disc_perturbed_weight: float = field(
        default=1.0, metadata={"help": "bce: weight of a perturbed expert among the negatives (a policy sample: 1)"}
    )
    disc_gp_weight: float = field(default=10.0, metadata={"help": "wgan_gp: weight of the gradient penalty"})
    disc_policy_negatives: int = field(
        default=32, metadata={"help": "policy samples per discriminator update, drawn from the step's (0: all)"}
    )
    disc_max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping of the discriminator"})

    def __post_init__(self) -> None:
        super().__post_init__()
        DISC_LOSSES.lookup(self.disc_loss)
        if self.disc_likelihood_from not in LIKELIHOOD_FROM:
            raise ValueError(
                f"disc_likelihood_from must be one of {LIKELIHOOD_FROM}, got {self.disc_likelihood_from!r}"
            )
        if self.disc_head_init not in HEAD_INITS:
            raise ValueError(f"disc_head_init must be one of {HEAD_INITS}, got {self.disc_head_init!r}")
        if not 0.0 < self.disc_pu_prior < 1.0:
            raise ValueError(f"disc_pu_prior must be in (0, 1), got {self.disc_pu_prior}")
        if not 0.0 <= self.disc_smoothing < 1.0:
            raise ValueError(f"disc_smoothing must be in [0, 1), got {self.disc_smoothing}")
        if self.disc_perturbed_weight <= 0:
            raise ValueError(f"disc_perturbed_weight must be > 0, got {self.disc_perturbed_weight}")
        if self.disc_temperature <= 0:
            raise ValueError(f"disc_temperature must be > 0, got {self.disc_temperature}")
        if self.disc_lora_r < 0:
            raise ValueError(f"disc_lora_r must be >= 0, got {self.disc_lora_r}")


Row = tuple[list[int], list[int], list[int]]  # (prompt ids, response ids, step ends inside the response)


def rows_of(batch: TraceBatch) -> list[Row]:
    """Split a packed batch back into (prompt ids, response ids, step ends relative to the response)."""
    rows = []
    for b in range(len(batch)):
        ids = batch.input_ids[b, batch.attention_mask[b].bool()].tolist()
        start = int(batch.response_mask[b].nonzero()[0]) if batch.response_mask[b].any() else len(ids)
        rows.append((ids[:start], ids[start:], [e - start for e in batch.step_ends[b]]))
    return rows


def pack(rows: list[Row], pad_id: int) -> TraceBatch:
    return build_batch([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], pad_id)


class ReplayBuffer:
    """The most recent `capacity` policy samples (as token rows), drawn uniformly as extra negatives."""

    def __init__(self, capacity: int):
        self.rows: deque[Row] = deque(maxlen=max(capacity, 0))

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, rows: list[Row]) -> None:
        if self.rows.maxlen:
            self.rows.extend(rows)

    def sample(self, k: int, rng: random.Random) -> list[Row]:
        return rng.sample(list(self.rows), min(k, len(self.rows)))

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Flat int64 tensors (safetensors holds tensors only): lengths (N, 3) and the concatenated ids."""
        lengths = torch.tensor([[len(p), len(r), len(e)] for p, r, e in self.rows], dtype=torch.long).reshape(-1, 3)
        flat = [x for p, r, e in self.rows for x in (*p, *r, *e)]
        return {"replay.lengths": lengths, "replay.ids": torch.tensor(flat, dtype=torch.long)}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.rows.clear()
        flat, at = tensors["replay.ids"].tolist(), 0
        for lp, lr, le in tensors["replay.lengths"].tolist():
            p, r, e = flat[at : at + lp], flat[at + lp : at + lp + lr], flat[at + lp + lr : at + lp + lr + le]
            self.rows.append((p, r, e))
            at += lp + lr + le


@dataclass
class Negatives:
    """What one update is made of; `kinds[b]` is 'expert', 'policy', 'perturbed' or 'replay'."""

    batch: TraceBatch
    kinds: list[str]


def perturbed_experts(
    reward_model: RewardModel, prompts: list[str], experts: list[str], per_expert: int, rng: random.Random
) -> TraceBatch | None:
    """`per_expert` corrupted copies of each expert trace; a trace no perturbation applies to (a one-line,
    non-numeric answer, say) gives none, rather than stopping the run."""
    pairs = []
    for p, e in zip(prompts, experts):
        for _ in range(per_expert):
            try:
                pairs.append((p, perturb(e, rng).response))
            except ValueError:
                break
    return reward_model.encode([p for p, _ in pairs], [r for _, r in pairs]) if pairs else None


def assemble(parts: list[tuple[str, TraceBatch | None]], pad_id: int) -> Negatives:
    rows, kinds = [], []
    for kind, batch in parts:
        if batch is not None and len(batch):
            part = rows_of(batch)
            rows += part
            kinds += [kind] * len(part)
    return Negatives(pack(rows, pad_id), kinds)


def discriminator_step(
    disc: torch.nn.Module,
    module: Discriminator,
    optimizer: torch.optim.Optimizer,
    reward_model: RewardModel,
    data: Negatives,
    args: DiscriminatorArgs,
) -> dict[str, float]:
    """One gradient step on `data`; returns loss and per-kind accuracy (D > 1/2 at the last labelled position).
    A non-finite loss or gradient leaves the discriminator as it was (`disc/skipped_nonfinite` = 1).

    `disc` may be the accelerator-wrapped (DDP) module, whose backward reduces gradients across processes;
    `module` is the same discriminator unwrapped.
    """
    device = next(module.parameters()).device
    batch = data.batch.to(device)
    is_expert = torch.tensor([k == "expert" for k in data.kinds], device=device)
    label_mask = reward_model.label_mask(batch)
    module.train()
    scores = disc(batch.input_ids, batch.attention_mask, batch.response_mask)
    loss_inputs = LossInputs(module, batch, scores, label_mask, is_expert, data.kinds)
    loss = DISC_LOSSES.lookup(args.disc_loss)(loss_inputs, args)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    # A non-finite loss (or gradient) skips the step. Decided on the gradient norm, which DDP has already averaged,
    # so every process skips alike (a process that skipped the backward alone would hang the others).
    own = {id(p) for group in optimizer.param_groups for p in group["params"]}  # not a shared base's policy adapter
    norm = torch.nn.utils.clip_grad_norm_([p for p in module.parameters() if id(p) in own], args.disc_max_grad_norm)
    finite = bool(torch.isfinite(norm))
    if finite:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)  # no gradient left behind for another optimiser (a shared base's policy)
    correct = accuracy(scores.detach(), label_mask, is_expert).float().cpu()
    stats = {"disc/loss": loss.item(), "disc/skipped_nonfinite": float(not finite)}
    for kind in ("expert", "policy", "perturbed", "replay"):
        sel = torch.tensor([k == kind for k in data.kinds])
        if sel.any():
            stats[f"disc/acc_{kind}"] = correct[sel].mean().item()
    return stats


def make_optimizer(module: Discriminator, args: DiscriminatorArgs) -> torch.optim.Optimizer:
    """AdamW with two groups: the backbone at `disc_lr`, the fresh head (w, a, b) at `disc_head_lr`."""
    head = {id(p) for p in module.head_parameters()}
    backbone = [p for _, p in module.named_trainable() if id(p) not in head]
    return torch.optim.AdamW(
        [{"params": backbone, "lr": args.disc_lr}, {"params": module.head_parameters(), "lr": args.disc_head_lr}],
        weight_decay=0.0,
    )


def save_optimizer(optimizer: torch.optim.Optimizer, path: str | Path) -> None:
    """Optimizer state as safetensors: tensors as `state.<param>.<key>`, the rest as JSON metadata."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, entry in state["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"state.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{key}"] = value
    meta = {"param_groups": json.dumps(state["param_groups"]), "scalars": json.dumps(scalars)}
    save_file(tensors, str(path), metadata=meta)


def load_optimizer(optimizer: torch.optim.Optimizer, path: str | Path) -> None:
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(str(path))
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = value
    for name, value in json.loads(meta["scalars"]).items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})


class DiscriminatorUpdater:
    """`update(prompts, experts, policy_batch) -> stats`: `n_disc` gradient steps of the discriminator on the experts
    (positives) against a random subset of this step's policy samples (`disc_policy_negatives`),
    `perturbed_per_expert` perturbed copies of each expert and `replay_per_step` replayed earlier samples.

    `module` is what trains: the reward model's discriminator itself, or the accelerator-wrapped (DDP) copy whose
    backward averages gradients across processes.
    """

    OPTIMIZER_FILE, REPLAY_FILE, RNG_FILE = "disc_optimizer.safetensors", "replay.safetensors", "rng.json"

    def __init__(
        self,
        reward_model: RewardModel,
        args: DiscriminatorArgs,
        *,
        module: torch.nn.Module | None = None,
        n_disc: int = 1,
        perturbed_per_expert: int = 1,
        replay_size: int = 0,
        replay_per_step: int = 16,
        seed: int = 0,
    ) -> None:
        self.reward_model, self.args = reward_model, args
        self.module = module if module is not None else reward_model.discriminator
        self.optimizer = make_optimizer(reward_model.discriminator, args)
        self.n_disc, self.perturbed_per_expert, self.replay_per_step = n_disc, perturbed_per_expert, replay_per_step
        self.replay = ReplayBuffer(replay_size)
        self.rng = random.Random(seed)

    def update(
        self, prompts: list[str], experts: list[str], policy_batch: TraceBatch | None, perturbed_per_expert: int = 0
    ) -> dict[str, float]:
        """`policy_batch` None: the experts against their perturbed copies alone (`perturbed_per_expert` each, or the
        updater's number), as the perturbed warm-up does before the policy has been sampled."""
        rm, pad = self.reward_model, self.reward_model.tokenizer.pad_token_id
        per_expert = perturbed_per_expert or self.perturbed_per_expert
        perturbed = perturbed_experts(rm, prompts, experts, per_expert, self.rng)
        parts = [("expert", rm.encode(prompts, experts))]
        if policy_batch is not None:
            replayed = self.replay.sample(self.replay_per_step, self.rng)
            k, negatives = self.args.disc_policy_negatives, policy_batch
            if 0 < k < len(policy_batch):  # a random subset of this step's samples: the update's cost stays bounded
                negatives = policy_batch.select(sorted(self.rng.sample(range(len(policy_batch)), k)))
            parts.append(("policy", negatives))
        parts.append(("perturbed", perturbed))
        if policy_batch is not None and replayed:
            parts.append(("replay", pack(replayed, pad)))
        data = assemble(parts, pad)
        stats: dict[str, float] = {}
        for _ in range(self.n_disc):
            stats = discriminator_step(self.module, rm.discriminator, self.optimizer, rm, data, self.args)
        if policy_batch is not None:
            self.replay.add(rows_of(policy_batch))
        return stats

    def save(self, folder: Path) -> None:
        """Optimiser state, replay buffer and RNG state into `folder` (the discriminator is saved by its owner)."""
        save_optimizer(self.optimizer, folder / self.OPTIMIZER_FILE)
        save_file(self.replay.state_tensors(), str(folder / self.REPLAY_FILE))
        (folder / self.RNG_FILE).write_text(json.dumps({"perturb_rng": self.rng.getstate()}))

    def load(self, folder: Path) -> None:
        load_optimizer(self.optimizer, folder / self.OPTIMIZER_FILE)
        self.replay.load_state_tensors(load_file(str(folder / self.REPLAY_FILE)))
        version, internal, gauss = json.loads((folder / self.RNG_FILE).read_text())["perturb_rng"]
        self.rng.setstate((version, tuple(internal), gauss))
