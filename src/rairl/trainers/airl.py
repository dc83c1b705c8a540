"""Adversarial inverse RL with token-level GRPO (R-AIRL, DESIGN §1.4–1.5; the `rairl airl` command,
`rairl.commands.airl`).

Each step: generate G samples per prompt → update the discriminator D (`n_disc` times) on experts vs samples
(plus perturbed experts and replay) → score the batch with the updated D → token rewards r_t (granularity mask,
backfill, clip) → group-normalised, discounted advantages A_t = Σ_{k≥t} γ^{k-t} ã_k, shape (B, T) → TRL's
clipped-surrogate policy loss. `AIRLTrainer` is `trl.GRPOTrainer` with one hook overridden,
`_generate_and_score_completions`, which replaces TRL's (B,) advantages with (B, T) ones. Its options are in
`rairl.trainers.airl_config`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from rairl.discriminator import Discriminator
from rairl.io import atomic_dir
from rairl.models import ModelArgs, load_tokenizer
from rairl.models.factory import TINY, build_tiny
from rairl.models.shared_base import DISC_ADAPTER, SharedBase
from rairl.reward_model import RewardModel
from rairl.rewards.advantages import add_outcome_reward, final_rewards, group_advantages
from rairl.tasks import Example, Task
from rairl.traces import encode_ids, project_values
from rairl.trainers import airl_state
from rairl.trainers.airl_config import AIRLArgs, Config
from rairl.trainers.checkpoints import resolve_resume
from rairl.trainers.common import finish, set_threads
from rairl.trainers.discriminator_update import DiscriminatorArgs, DiscriminatorUpdater
from rairl.trainers.grpo import GRPOTrainer, trainer_inputs
from rairl.trainers.monitor import HealthMonitor, reward_correctness_stats
from rairl.trainers.passthrough import append_experts

logger = logging.getLogger(__name__)


class AIRLTrainer(GRPOTrainer):
    """GRPO on a learned reward: the discriminator is trained inside the generation hook."""

    def __init__(
        self,
        *args,
        reward_model: RewardModel,
        task: Task,
        examples: dict[str, Example],
        airl: AIRLArgs,
        disc_args: DiscriminatorArgs,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.reward_model, self.task, self.examples = reward_model, task, examples
        self.airl, self.disc_args = airl, disc_args
        self.monitor = HealthMonitor(window=airl.monitor_window)
        self.shared_tokenizer = reward_model.tokenizer.get_vocab() == self.processing_class.get_vocab()
        module = reward_model.discriminator.to(self.accelerator.device)
        if module.shared is not None and self.accelerator.num_processes > 1:
            raise ValueError(
                "a shared base (--disc_share_base) runs in one process: under DDP the policy's wrapper would own the "
                "discriminator's adapter too; pass --disc_share_base false"
            )
        self.updater: DiscriminatorUpdater | None = None
        if airl.disc_frozen:
            module.requires_grad_(False).eval()
        else:  # trains through the trainer's accelerator: under DDP its gradients are averaged across processes
            self.updater = DiscriminatorUpdater(
                reward_model,
                disc_args,
                module=self.accelerator.prepare_model(module),
                n_disc=airl.n_disc,
                perturbed_per_expert=airl.perturbed_per_expert,
                replay_size=airl.replay_size,
                replay_per_step=airl.replay_per_step,
                seed=self.args.seed,
            )
        self._verifier: torch.Tensor | None = None
        self._nonfinite_steps = 0  # steps in a row with non-finite rewards

    def create_optimizer(self, model=None):
        """TRL's optimiser over the policy's trainable weights only: on a shared base the discriminator's adapter
        (also inside the policy's model) belongs to the discriminator's optimiser."""
        shared = self.reward_model.discriminator.shared
        own = shared.parameters(DISC_ADAPTER) if shared is not None else []
        for p in own:
            p.requires_grad_(False)
        try:
            return super().create_optimizer(model)
        finally:
            for p in own:
                p.requires_grad_(True)

    # ------------------------------------------------------------------ discriminator
    def policy_batch(self, examples: list[Example], prompt_ids: list[list[int]], completion_ids: list[list[int]]):
        """The samples in the discriminator's token space, and their decoded texts. With the policy's tokenizer the
        ids are kept; otherwise the texts are re-tokenised after the examples' plain prompts (rendered with the
        discriminator's own chat template, not the policy's)."""
        if self.shared_tokenizer:
            return encode_ids(self.reward_model.tokenizer, prompt_ids, completion_ids, self.task.step_spans)
        texts = self.processing_class.batch_decode(completion_ids, skip_special_tokens=True)
        return self.reward_model.encode([self.task.prompt(ex) for ex in examples], texts), texts

    def update_discriminator(self, examples: list[Example], policy_batch, perturbed_per_expert: int = 0):
        """The updater's steps on this step's samples (None: experts against perturbed copies alone); stats
        averaged across processes."""
        unique = list({ex.id: ex for ex in examples}.values())
        prompts, experts = [self.task.prompt(ex) for ex in unique], [ex.expert for ex in unique]
        stats = self.updater.update(prompts, experts, policy_batch, perturbed_per_expert)
        if self.accelerator.num_processes > 1:  # averaged: every process logs and monitors (and stops) alike
            keys = sorted(stats)
            values = torch.tensor([stats[k] for k in keys], device=self.accelerator.device)
            stats = dict(zip(keys, self.accelerator.reduce(values, reduction="mean").tolist()))
        return stats

    def warmup_discriminator(self, steps: int) -> None:
        """W discriminator-only steps (the policy does not move): experts against the initial policy's samples and
        perturbed experts, or (`disc_warmup_negatives=perturbed`) against `disc_warmup_perturbed` perturbed copies
        of each expert alone."""
        if steps <= 0 or self.updater is None:
            return
        self.model.train()
        loader = iter(self.get_train_dataloader())
        for _ in tqdm(range(steps), desc="discriminator warm-up", disable=not self.accelerator.is_main_process):
            try:
                inputs = next(loader)
            except StopIteration:
                loader = iter(self.get_train_dataloader())
                inputs = next(loader)
            examples = [self.examples[x["example_id"]] for x in inputs]
            if self.airl.disc_warmup_negatives == "perturbed":
                stats = self.update_discriminator(examples, None, self.airl.disc_warmup_perturbed)
                continue
            prompt_ids, completion_ids = self._generate([x["prompt"] for x in inputs])[:2]
            batch, _ = self.policy_batch(examples, prompt_ids, completion_ids)
            stats = self.update_discriminator(examples, batch)
        logger.info("after warm-up: %s", {k: round(v, 3) for k, v in stats.items()})

    # ------------------------------------------------------------------ the overridden hook
    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._verifier = rewards[:, 0]  # (B_global,) correctness, gathered across processes
        return rewards

    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        if not self.model.training:
            return out
        prompt_ids = [r[m.bool()].tolist() for r, m in zip(out["prompt_ids"], out["prompt_mask"])]
        completion_ids = [r[m.bool()].tolist() for r, m in zip(out["completion_ids"], out["completion_mask"])]
        examples = [self.examples[x["example_id"]] for x in inputs]
        policy_batch, _ = self.policy_batch(examples, prompt_ids, completion_ids)
        local = slice(self.accelerator.process_index * len(inputs), (self.accelerator.process_index + 1) * len(inputs))
        update = self.updater is not None and self.state.global_step % self.airl.disc_update_every == 0
        stats = self.update_discriminator(examples, self.negatives(policy_batch, local)) if update else {}

        rewards = self.completion_rewards(policy_batch, completion_ids, out["completion_ids"].shape[1])  # (B, C)
        all_rewards = self.accelerator.gather(self.accelerator.pad_across_processes(rewards, dim=1))
        # gathered as integers: padding across processes turns a bool tensor into int64 (bool + pad value)
        all_mask = self.accelerator.gather(self.accelerator.pad_across_processes(out["completion_mask"], dim=1)).bool()
        correct = self._verifier.to(all_rewards.device)
        all_rewards, stats["monitor/nonfinite_rewards"] = self._drop_nonfinite(all_rewards, all_mask)
        if self.airl.outcome_reward_weight:
            all_rewards = add_outcome_reward(all_rewards, all_mask, correct, self.airl.outcome_reward_weight)
        advantages = group_advantages(
            all_rewards,
            all_mask,
            self.num_generations,
            self.airl.advantage_discount,
            outcome=self.reward_model.settings.granularity_entry.outcome,
        )  # (B_global, C_max)
        out["advantages"] = advantages[local, : rewards.shape[1]].to(out["completion_ids"].device)
        stats.update(reward_correctness_stats(final_rewards(all_rewards, all_mask).cpu(), correct.cpu() > 0.5))
        self._log_stats(stats)
        if self.airl.expert_passthrough:
            out = append_experts(self, out, examples, all_rewards, all_mask)
        return out

    def negatives(self, policy_batch, local: slice):
        """The policy samples the discriminator is shown as negatives: all of them, or (`disc_negatives=wrong`) those
        the verifier marks wrong (None when every sample is right: the update then sees perturbed experts only)."""
        if self.airl.disc_negatives == "all":
            return policy_batch
        wrong = (self._verifier[local].cpu() < 0.5).nonzero().squeeze(1).tolist()
        return policy_batch.select(wrong) if wrong else None

    def _drop_nonfinite(self, rewards: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, float]:
        """Zero the rewards of every group holding a non-finite one (such a group then carries no advantage), and
        count the rows; `max_nonfinite_steps` steps in a row with any stop the run with a message."""
        bad_rows = ~torch.where(mask, rewards, 0.0).isfinite().all(dim=1)  # (B,)
        if not bad_rows.any():
            self._nonfinite_steps = 0
            return rewards, 0.0
        self._nonfinite_steps += 1
        logger.warning(
            "step %d: %d samples with non-finite rewards; their groups get no advantage",
            self.state.global_step,
            int(bad_rows.sum()),
        )
        if self._nonfinite_steps >= self.airl.max_nonfinite_steps:
            raise FloatingPointError(
                f"non-finite rewards at {self._nonfinite_steps} steps in a row: the discriminator has "
                "diverged; lower --disc_lr or --disc_head_lr, or resume from an earlier checkpoint"
            )
        bad_groups = bad_rows.view(-1, self.num_generations).any(dim=1).repeat_interleave(self.num_generations)
        return torch.where(bad_groups[:, None], 0.0, rewards), float(bad_rows.sum())

    def completion_rewards(self, policy_batch, completion_ids: list[list[int]], width: int) -> torch.Tensor:
        """r_t on the policy's completion tokens (B, C), aligned by ids (shared tokenizer) or char offsets."""
        token_rewards = self.reward_model.token_rewards(policy_batch)  # (B, T_disc), on CPU
        out = torch.zeros(len(completion_ids), width)
        for b, ids in enumerate(completion_ids):
            cols = policy_batch.response_mask[b].nonzero().squeeze(1)
            values = token_rewards[b, cols]
            if not self.shared_tokenizer:
                values = project_values(
                    values,
                    self.reward_model.tokenizer,
                    policy_batch.input_ids[b, cols].tolist(),
                    self.processing_class,
                    ids,
                )
            out[b, : len(ids)] = values[: len(ids)]
        return out.to(self.accelerator.device)

    def _log_stats(self, stats: dict[str, float]) -> None:
        for key, value in stats.items():
            self._metrics["train"][key].append(value)
        for warning in self.monitor.update(stats):
            logger.warning("step %d: %s", self.state.global_step, warning)
            if self.airl.stop_on_warning:
                self.control.should_training_stop = True

    # ------------------------------------------------------------------ checkpoints
    def _save_extra_state(self, folder: Path) -> None:
        airl_state.save(self, folder)  # inside the staging checkpoint, before it is marked complete

    def _load_extra_state(self, folder: Path) -> None:
        airl_state.load(self, folder)

    def _load_optimizer_and_scheduler(self, checkpoint):
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is not None:
            self._load_extra_state(Path(checkpoint))


def shares_base(config: Config) -> bool:
    """Whether the policy, the discriminator and the reference run on one copy of the base (`SharedBase`)."""
    return config.disc_share_base and config.disc_model == "policy" and config.lora_r > 0 and config.disc_lora_r > 0


def build_reward_model(config: Config, policy, tokenizer, task: Task) -> RewardModel:
    init = dict(likelihood_from=config.disc_likelihood_from, head_init=config.disc_head_init)
    if shares_base(config):
        if config.disc_likelihood and config.disc_likelihood_from != "reference":
            raise ValueError(
                "a shared base reads ℓ_t from the frozen base (--disc_likelihood_from reference); for ℓ_t through the "
                "trained backbone use a discriminator of its own (--disc_share_base false)"
            )
        if config.disc_path:
            raise ValueError("--disc_path starts from a saved discriminator: use it with --disc_share_base false")
        shared = SharedBase(policy, config.disc_lora_r, config.disc_lora_alpha, config.disc_lora_target_modules)
        disc = Discriminator.from_shared_base(
            shared, config.disc_likelihood, config.disc_temperature, head_init=config.disc_head_init
        )
    elif config.disc_path:
        disc = Discriminator.from_pretrained(config.disc_path)
        tokenizer = load_tokenizer(config.disc_path)
    elif config.disc_model == "policy":
        disc = Discriminator.from_causal_lm(policy, config.disc_likelihood, config.disc_temperature, **init)
    elif config.disc_model == TINY:
        small = ModelArgs(
            hidden_size=config.disc_hidden_size,
            num_layers=config.disc_num_layers,
            num_heads=config.disc_num_heads,
            max_position_embeddings=config.max_position_embeddings,
        )
        backbone, tokenizer = build_tiny(small, seed=config.seed + 1)
        disc = Discriminator.from_causal_lm(backbone, config.disc_likelihood, config.disc_temperature, **init)
    else:
        disc = Discriminator.from_checkpoint(config.disc_model, config.disc_likelihood, config.disc_temperature, **init)
        tokenizer = load_tokenizer(config.disc_model)
    if config.disc_lora_r and disc.shared is None:
        disc.add_lora(config.disc_lora_r, config.disc_lora_alpha, config.disc_lora_target_modules)
    return RewardModel(
        disc, tokenizer, config.reward_settings(), step_spans=task.step_spans, batch_size=config.disc_batch_size
    )


def build_trainer(config: Config) -> AIRLTrainer:
    """The task, policy, reward model and trainer of a run, before any training (tests and benchmarks use it)."""
    task, examples, kwargs = trainer_inputs(config)
    missing = [ex.id for ex in examples.values() if not ex.expert]
    if missing:
        raise ValueError(
            f"{task.name}/{config.train_split}: {len(missing)} examples have no expert trace (e.g. {missing[0]})"
        )
    reward_model = build_reward_model(config, kwargs["model"], kwargs["processing_class"], task)
    return AIRLTrainer(**kwargs, reward_model=reward_model, task=task, examples=examples, airl=config, disc_args=config)


def train(config: Config) -> dict[str, Any]:
    """Learn the reward and train the policy on it; policy and `discriminator/` land in `output_dir`."""
    set_threads(config.threads)
    resume_from = resolve_resume(config.resume_from_checkpoint, config.output_dir)
    trainer = build_trainer(config)
    summary = train_and_save(trainer, config, resume_from)
    # Several processes: close the process group before the interpreter exits (left open, gloo can abort the
    # exit), after the DDP wrappers, whose reducers hold the group: freeing one after the group is closed
    # destroys the group inside garbage collection, which can deadlock gloo's worker threads.
    accelerator = trainer.accelerator
    del trainer
    accelerator.free_memory()
    accelerator.end_training()
    return summary


def train_and_save(trainer: AIRLTrainer, config: Config, resume_from: str | None = None) -> dict[str, Any]:
    """Warm the discriminator up (fresh runs only), train, then write the final policy, discriminator and summary.

    Every process trains; only the main one writes, and the others wait for it, so the outputs are complete
    when this returns on any process.
    """
    start = time.perf_counter()
    if resume_from is None:
        trainer.warmup_discriminator(config.disc_warmup_steps)
    trainer.train_to_end(resume_from)
    wall = time.perf_counter() - start
    summary = {"output_dir": config.output_dir, "steps": trainer.state.global_step, "wall_time_s": wall}

    def write_discriminator() -> None:
        with atomic_dir(Path(config.output_dir, "discriminator")) as tmp:
            trainer.reward_model.save_pretrained(tmp)

    finish(trainer, config.output_dir, summary, write_discriminator)
    return summary
