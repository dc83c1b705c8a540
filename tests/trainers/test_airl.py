"""`rairl airl` end to end on a 1-layer, 32-wide policy (a few steps each): every granularity, a frozen
discriminator, expert passthrough, a verifier's outcome reward, a discriminator with another tokenizer, resuming,
and (marked slow) two DDP processes through benchmarks/multiprocess_airl.py."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch
from flags import rl_run
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, LlamaForCausalLM

from rairl.cli import main
from rairl.config import parse_config
from rairl.discriminator import Discriminator
from rairl.models.factory import tiny_config
from rairl.reward_model import RewardModel
from rairl.trainers import airl, airl_state
from rairl.trainers.airl_state import STATE_DIR
from rairl.trainers.discriminator_update import DiscriminatorUpdater, perturbed_experts

RUN = rl_run(50, 8, 4, 24, "--warmup_steps", "0", "--disc_warmup_steps", "1", "--max_steps", "2", "--save_steps", "100")


def run_cli(output_dir: Path, *extra: str) -> None:
    assert main(["airl", *RUN, "--output_dir", str(output_dir), *extra]) == 0


def config(output_dir: Path, *extra: str) -> airl.Config:
    return parse_config(airl.Config, [*RUN, "--output_dir", str(output_dir), *extra])


def differs(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    assert a.keys() == b.keys()
    return any(not torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def saved_disc(saved_tiny) -> Path:
    """A discriminator started from the tiny policy (seed 0, 256 positions), its head drawn after seed 3, saved with
    its tokenizer."""
    return saved_tiny(256, head_seed=3) / "disc"


# --- every granularity, end to end ------------------------------------------------------------------------------


@pytest.mark.parametrize("granularity", ["outcome", "step", "interval", "dense"])
def test_airl_trains_policy_and_discriminator(tmp_path, granularity, read_log, tiny_lm):
    run_cli(tmp_path, "--granularity", granularity, "--interval", "4")
    log = read_log(tmp_path)
    steps = [row for row in log if "loss" in row]
    assert len(steps) == 2 and all(math.isfinite(row["loss"]) for row in steps)
    keys = set().union(*log)
    assert {"disc/loss", "disc/acc_expert", "disc/acc_policy", "disc/acc_perturbed"} <= keys
    assert {"reward/mean", "policy/accuracy"} <= keys

    initial, _ = tiny_lm(256)
    final = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert differs(initial.state_dict(), final.state_dict()), "the policy did not move"

    disc = Discriminator.from_pretrained(tmp_path / "discriminator")
    assert disc.uses_likelihood
    assert differs(initial.model.state_dict(), disc.classifier.model.state_dict()), "the discriminator did not move"
    assert json.loads((tmp_path / "train_summary.json").read_text())["steps"] == 2


# --- options ----------------------------------------------------------------------------------------------------


def test_frozen_discriminator_never_takes_a_gradient(tmp_path, saved_disc, monkeypatch, read_log):
    def no_update(*args, **kwargs):
        raise AssertionError("a frozen discriminator was updated")

    monkeypatch.setattr(DiscriminatorUpdater, "update", no_update)
    trainer = airl.build_trainer(config(tmp_path, "--disc_frozen", "--disc_path", str(saved_disc)))
    trainer.warmup_discriminator(2)  # a no-op when frozen
    trainer.train()
    disc = trainer.reward_model.discriminator
    assert trainer.updater is None
    assert all(not p.requires_grad and p.grad is None for p in disc.parameters())
    saved = Discriminator.from_pretrained(saved_disc).state_dict()
    assert not differs(saved, disc.state_dict())
    assert trainer.state.global_step == 2
    assert not any(k.startswith("disc/") for row in read_log(tmp_path) for k in row)


def test_perturbed_warmup_trains_on_perturbed_experts_without_sampling(tmp_path, monkeypatch):
    trainer = airl.build_trainer(
        config(tmp_path, "--disc_warmup_negatives", "perturbed", "--disc_warmup_perturbed", "3")
    )
    seen = []
    update = DiscriminatorUpdater.update

    def spy(self, prompts, experts, policy_batch, perturbed_per_expert=0):
        stats = update(self, prompts, experts, policy_batch, perturbed_per_expert)
        seen.append((policy_batch is None, perturbed_per_expert, sorted(k for k in stats if k.startswith("disc/acc"))))
        return stats

    monkeypatch.setattr(DiscriminatorUpdater, "update", spy)
    monkeypatch.setattr(type(trainer), "_generate", lambda *a, **k: pytest.fail("the perturbed warm-up sampled"))
    before = {k: v.clone() for k, v in trainer.reward_model.discriminator.state_dict().items()}
    trainer.warmup_discriminator(2)
    assert seen == [(True, 3, ["disc/acc_expert", "disc/acc_perturbed"])] * 2
    assert differs(before, trainer.reward_model.discriminator.state_dict())
    with pytest.raises(ValueError, match="disc_warmup_negatives must be one of"):
        config(tmp_path, "--disc_warmup_negatives", "replay")


def test_update_ratio_updates_the_discriminator_on_every_kth_step(tmp_path, monkeypatch):
    updated_at = []
    update = DiscriminatorUpdater.update

    def counting_update(self, *args, **kwargs):
        updated_at.append(trainer.state.global_step)
        return update(self, *args, **kwargs)

    monkeypatch.setattr(DiscriminatorUpdater, "update", counting_update)
    trainer = airl.build_trainer(config(tmp_path, "--disc_update_every", "2", "--max_steps", "3"))
    trainer.train()
    assert updated_at == [0, 2]
    assert trainer.state.global_step == 3


def test_wrong_only_negatives_show_the_discriminator_the_verifier_s_wrong_samples(tmp_path, monkeypatch):
    seen = []
    update = DiscriminatorUpdater.update

    def spy(self, prompts, experts, policy_batch, perturbed_per_expert=0):
        seen.append((trainer._verifier.clone(), None if policy_batch is None else policy_batch.input_ids.clone()))
        return update(self, prompts, experts, policy_batch, perturbed_per_expert)

    monkeypatch.setattr(DiscriminatorUpdater, "update", spy)
    hook = airl.AIRLTrainer.policy_batch
    batches = []
    monkeypatch.setattr(airl.AIRLTrainer, "policy_batch", lambda *a: batches.append(hook(*a)) or batches[-1])
    rewards = airl.AIRLTrainer._calculate_rewards

    def half_right(self, *args):  # an untrained policy is always wrong: call every other sample right instead
        out = rewards(self, *args)
        self._verifier = (torch.arange(len(self._verifier)) % 2 == 0).float()
        return out

    monkeypatch.setattr(airl.AIRLTrainer, "_calculate_rewards", half_right)
    trainer = airl.build_trainer(config(tmp_path, "--disc_negatives", "wrong", "--disc_warmup_steps", "0"))
    trainer.train()
    for (verifier, ids), (batch, _) in zip(seen, batches):
        wrong = (verifier < 0.5).nonzero().squeeze(1).tolist()
        assert wrong == [1, 3, 5, 7] and torch.equal(ids, batch.select(wrong).input_ids)
    assert seen, "the discriminator was never updated"
    with pytest.raises(ValueError, match="disc_negatives must be one of"):
        config(tmp_path, "--disc_negatives", "correct")


def spy_on_hook(trainer) -> list[tuple[int, dict]]:
    calls = []
    hook = trainer._generate_and_score_completions

    def spy(inputs):
        out = hook(inputs)
        calls.append((len(inputs), out))
        return out

    trainer._generate_and_score_completions = spy
    return calls


def test_expert_passthrough_adds_one_row_per_group(tmp_path):
    trainer = airl.build_trainer(config(tmp_path, "--expert_passthrough", "--max_steps", "1"))
    calls = spy_on_hook(trainer)
    trainer.train()
    ((n, out),) = calls
    assert n == 8 and out["completion_ids"].shape[0] == 8 + 8 // 4
    assert out["advantages"].shape == out["completion_ids"].shape
    assert torch.isfinite(out["advantages"]).all()
    assert (out["advantages"][out["completion_mask"] == 0] == 0).all()
    tok = trainer.processing_class
    expert_of = {trainer.task.prompt(ex): ex.expert for ex in trainer.examples.values()}
    for row, group_start in ((8, 0), (9, 4)):  # the expert rows: the group's prompt, its expert trace and EOS
        prompt = tok.decode(out["prompt_ids"][row][out["prompt_mask"][row].bool()])
        assert prompt == tok.decode(out["prompt_ids"][group_start][out["prompt_mask"][group_start].bool()])
        ids = out["completion_ids"][row][out["completion_mask"][row].bool()].tolist()
        assert ids[-1] == tok.eos_token_id
        assert tok.decode(ids[:-1]) == expert_of[prompt]
    assert out["num_items_in_batch"].item() == out["completion_mask"].sum().item()
    assert math.isfinite(trainer.state.log_history[0]["loss"])


def test_outcome_reward_weight_changes_the_advantages(tmp_path):
    trainer = airl.build_trainer(config(tmp_path, "--disc_frozen", "--granularity", "step"))
    trainer.model.train()

    def every_other_correct(prompts, completions, **kwargs):  # a verifier that passes rows 0, 2, 4, ...
        return [float(i % 2 == 0) for i in range(len(completions))]

    trainer.reward_funcs = [every_other_correct]
    inputs = [row for row in trainer.train_dataset.select([0] * 4 + [1] * 4)]
    advantages = {}
    for weight in (0.0, 1.0):
        trainer.airl.outcome_reward_weight = weight
        torch.manual_seed(7)  # the same samples both times
        out = trainer._generate_and_score_completions(inputs)
        advantages[weight] = out["advantages"]
    assert torch.isfinite(advantages[1.0]).all()
    assert not torch.allclose(advantages[0.0], advantages[1.0])


def test_passthrough_expert_gets_the_verifier_bonus_too(tmp_path):
    """The policy's r_T carry weight · correctness inside μ_g and σ_g; the (correct) expert's r_T must as well.
    (A head that starts at zero would score every sample alike: a group that cannot be told apart gives no
    advantage, the expert's included, so this test starts from the running-minimum head.)"""
    trainer = airl.build_trainer(
        config(
            tmp_path,
            "--disc_frozen",
            "--expert_passthrough",
            "--granularity",
            "outcome",
            "--disc_head_init",
            "running_min",
        )
    )
    trainer.model.train()
    trainer.reward_funcs = [lambda prompts, completions, **kwargs: [0.0] * len(completions)]  # no sample passes
    inputs = [row for row in trainer.train_dataset.select([0] * 4 + [1] * 4)]
    advantages = {}
    for weight in (0.0, 1.0):
        trainer.airl.outcome_reward_weight = weight
        torch.manual_seed(7)
        advantages[weight] = trainer._generate_and_score_completions(inputs)["advantages"]
    assert torch.equal(advantages[0.0][:8], advantages[1.0][:8])  # the samples' rewards and group stats are unchanged
    rise = advantages[1.0][8:] - advantages[0.0][8:]  # the experts: A rises by 1 / σ_g on every token
    assert (rise[:, 0] > 0).all()
    for row in rise:
        assert torch.allclose(row[row != 0], row[0].expand((row != 0).sum()))


def test_passthrough_needs_whole_groups_on_each_process(tmp_path):
    # 2 steps per generation: TRL's generation batch (12) holds whole groups of 4, one device's batch (6) does not
    with pytest.raises(ValueError, match="multiple of num_generations"):
        config(tmp_path, "--expert_passthrough", "--per_device_train_batch_size", "6", "--steps_per_generation", "2")


def test_passthrough_needs_no_accumulation_and_no_kl(tmp_path):
    with pytest.raises(ValueError, match="expert_passthrough"):
        config(tmp_path, "--expert_passthrough", "--beta", "0.1")
    with pytest.raises(ValueError, match="unknown granularity"):
        config(tmp_path, "--granularity", "token")


def test_experts_no_perturbation_applies_to_give_no_hard_negative(saved_disc):
    rm = RewardModel.from_pretrained(saved_disc)
    rng = random.Random(0)
    batch = perturbed_experts(rm, ["Q1\n", "Q2\n"], ["#### yes", "2+5=7\n#### 7"], 2, rng)
    assert len(batch) == 2  # two copies of the second trace; none of "#### yes"
    assert perturbed_experts(rm, ["Q1\n"], ["#### yes"], 2, rng) is None


# --- a discriminator with another tokenizer ---------------------------------------------------------------------


def test_discriminator_with_another_tokenizer_aligns_by_characters(tmp_path, piece_tokenizer):
    tok = piece_tokenizer(["####", *(str(n) for n in range(10, 100))])  # two-digit numbers and '####': one token
    assert tok.decode(tok("7*8=56\n#### 56")["input_ids"]) == "7*8=56\n#### 56"
    torch.manual_seed(0)
    backbone = LlamaForCausalLM(tiny_config(tok, 32, 1, 2, 256))
    disc_dir = tmp_path / "word_disc"
    Discriminator.from_causal_lm(backbone, likelihood=True).save_pretrained(disc_dir, tok)

    trainer = airl.build_trainer(config(tmp_path / "run", "--disc_path", str(disc_dir), "--max_steps", "1"))
    assert not trainer.shared_tokenizer
    calls = spy_on_hook(trainer)
    trainer.warmup_discriminator(1)
    trainer.train()
    ((_, out),) = calls
    assert torch.isfinite(out["advantages"]).all() and out["advantages"].shape == out["completion_ids"].shape
    assert any(k.startswith("disc/") for k in trainer.state.log_history[0])


# --- resuming ---------------------------------------------------------------------------------------------------


def test_resume_restores_discriminator_optimizer_and_replay(tmp_path, monkeypatch):
    common = ["--save_steps", "2", "--replay_size", "16"]
    run_cli(tmp_path, *common, "--max_steps", "2")
    checkpoint = tmp_path / "checkpoint-2"
    assert (checkpoint / STATE_DIR / "discriminator").is_dir()
    assert (checkpoint / STATE_DIR / "disc_optimizer.safetensors").is_file()

    loaded = {}
    load = airl_state.load

    def spy(trainer, folder):
        load(trainer, folder)
        loaded["folder"] = folder
        loaded["replay"] = len(trainer.updater.replay)
        loaded["disc"] = {k: v.clone() for k, v in trainer.reward_model.discriminator.state_dict().items()}
        loaded["optimizer"] = trainer.updater.optimizer.state_dict()["state"]

    monkeypatch.setattr(airl_state, "load", spy)
    run_cli(tmp_path, *common, "--max_steps", "4", "--resume_from_checkpoint", "last")
    assert loaded["folder"] == checkpoint
    assert loaded["replay"] > 0
    assert loaded["optimizer"] and all("exp_avg" in state for state in loaded["optimizer"].values())
    saved = Discriminator.from_pretrained(checkpoint / STATE_DIR / "discriminator").state_dict()
    assert not differs(saved, loaded["disc"])
    assert json.loads((tmp_path / "train_summary.json").read_text())["steps"] == 4
    assert (tmp_path / "checkpoint-4" / STATE_DIR).is_dir()
    lines = (tmp_path / "log.jsonl").read_text().count("\n")
    # finished: nothing is trained again
    run_cli(tmp_path, *common, "--max_steps", "4", "--resume_from_checkpoint", "last")
    assert json.loads((tmp_path / "train_summary.json").read_text())["steps"] == 4
    assert (tmp_path / "log.jsonl").read_text().count("\n") == lines


def test_resume_from_a_checkpoint_without_airl_state_is_an_error(tmp_path):
    checkpoint = tmp_path / "checkpoint-1"
    checkpoint.mkdir()

    class Stub:
        pass

    with pytest.raises(FileNotFoundError, match="not an R-AIRL checkpoint"):
        airl_state.load(Stub(), checkpoint)


# --- two processes ----------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="needs torch.distributed with the gloo backend",
)
def test_two_processes_end_with_identical_policy_and_discriminator():
    """benchmarks/multiprocess_airl.py: DDP on two CPU processes; each scenario checks the weights' hashes."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "multiprocess_airl.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--timeout", "240"], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert proc.stdout.count(" ok ") == 2, proc.stdout


# --- non-finite guards ------------------------------------------------------------------------------------------


def test_nonfinite_rewards_zero_their_group_and_stop_after_a_run_of_them(tmp_path):
    trainer = airl.build_trainer(config(tmp_path, "--max_nonfinite_steps", "2"))
    rewards = torch.arange(16, dtype=torch.float32).view(8, 2)  # two groups of G = 4
    rewards[5, 1] = float("nan")
    mask = torch.ones(8, 2, dtype=torch.bool)
    kept, count = trainer._drop_nonfinite(rewards, mask)
    assert count == 1.0
    assert torch.equal(kept[:4], rewards[:4]) and torch.equal(kept[4:], torch.zeros(4, 2))
    assert torch.equal(airl.group_advantages(kept, mask, 4, 1.0)[4:], torch.zeros(4, 2))  # no advantage there
    padded, padding = rewards.clone(), mask.clone()
    padded[5, 1], padded[6, 1], padding[6, 1] = 0.0, float("inf"), False
    assert trainer._drop_nonfinite(padded, padding)[1] == 0.0  # outside the response: ignored (and the run resets)
    trainer._drop_nonfinite(rewards, mask)
    with pytest.raises(FloatingPointError, match="non-finite rewards at 2 steps in a row"):
        trainer._drop_nonfinite(rewards, mask)


def test_a_nonfinite_discriminator_loss_skips_the_update(tmp_path):
    from rairl.trainers.discriminator_update import Negatives, discriminator_step

    trainer = airl.build_trainer(config(tmp_path))
    rm = trainer.reward_model
    batch = rm.encode(["Q:\n", "Q:\n"], ["1+1=2\n#### 2", "1+1=3\n#### 3"])
    before = {k: v.clone() for k, v in rm.discriminator.state_dict().items()}

    def poisoned(*args):
        return rm.discriminator(*args) * float("nan")

    stats = discriminator_step(
        poisoned,
        rm.discriminator,
        trainer.updater.optimizer,
        rm,
        Negatives(batch, ["expert", "policy"]),
        trainer.disc_args,
    )
    assert stats["disc/skipped_nonfinite"] == 1.0
    assert not differs(before, rm.discriminator.state_dict())
    stats = discriminator_step(
        rm.discriminator,
        rm.discriminator,
        trainer.updater.optimizer,
        rm,
        Negatives(batch, ["expert", "policy"]),
        trainer.disc_args,
    )
    assert stats["disc/skipped_nonfinite"] == 0.0 and differs(before, rm.discriminator.state_dict())


def test_a_lora_discriminator_trains_and_resumes_its_adapters_exactly(tmp_path, monkeypatch):
    common = ["--save_steps", "2", "--disc_lora_r", "4", "--disc_likelihood_from", "reference"]
    run_cli(tmp_path, *common, "--max_steps", "2")
    state = tmp_path / "checkpoint-2" / STATE_DIR
    saved = load_file(str(state / airl_state.TRAINABLE_FILE))
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in saved.items())  # the adapters moved off zero
    loaded = {}
    load = airl_state.load

    def spy(trainer, folder):
        load(trainer, folder)
        disc = trainer.reward_model.discriminator
        loaded.update({k: p.detach().clone() for k, p in disc.named_parameters() if p.requires_grad})

    monkeypatch.setattr(airl_state, "load", spy)
    run_cli(tmp_path, *common, "--max_steps", "3", "--resume_from_checkpoint", "last")
    assert loaded.keys() == saved.keys() and not differs(saved, loaded)
    final = Discriminator.from_pretrained(tmp_path / "discriminator")  # merged: loads without peft
    assert not final.has_lora and final.uses_likelihood
