"""The discriminator update of R-AIRL (DESIGN §1.2): experts against the policy's samples of this step, perturbed
expert traces (hard negatives) and a replay buffer of earlier samples. `DiscriminatorUpdater` holds what the update
owns (the discriminator, its optimiser, the replay buffer, the RNG) and saves and restores it for checkpoints; the
trainer only hands it each step's samples.
"""

from __future__ import annotations

import json
import random
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from rairl.discriminator import (
    Discriminator,
    DiscriminatorArgs,
    accuracy,
    bce_loss,
    gradient_penalty,
    nnpu_loss,
    wgan_loss,
)
from rairl.reward_model import RewardModel
from rairl.rewards.perturb import perturb
from rairl.traces import TraceBatch, build_batch

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
    if args.disc_loss == "bce":
        weights = None
        if args.disc_perturbed_weight != 1.0:
            weights = torch.tensor([args.disc_perturbed_weight if k == "perturbed" else 1.0 for k in data.kinds])
        loss = bce_loss(scores, label_mask, is_expert, args.disc_smoothing, weights)
    elif args.disc_loss == "nnpu":
        unlabeled = torch.tensor([k in ("policy", "replay") for k in data.kinds], device=device)
        loss = nnpu_loss(scores, label_mask, is_expert, unlabeled, args.disc_pu_prior, args.disc_smoothing)
    else:
        loss = wgan_loss(scores, label_mask, is_expert) + args.disc_gp_weight * gradient_penalty(
            module, batch, label_mask
        )
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
