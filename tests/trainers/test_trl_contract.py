"""What `AIRLTrainer` relies on in TRL's `GRPOTrainer` (trl 1.16). These tests fail loudly when an upgrade of TRL
changes a hook's name, signature or output, or stops accepting (B, T) advantages in the loss.

AIRLTrainer overrides `_generate_and_score_completions` (to replace TRL's (B,) advantages with (B, T) ones) and
`_calculate_rewards` (to keep the verifier's gathered rewards), and calls `_generate` for the discriminator's
warm-up; `_compute_loss` must broadcast (B, T) advantages token by token.
"""

from __future__ import annotations

import inspect

import pytest
import torch
from flags import rl_run
from trl import GRPOTrainer

from rairl.config import parse_config
from rairl.trainers import airl

RUN = rl_run(16, 4, 2, 8, "--disc_warmup_steps", "0")


def parameters(fn) -> list[str]:
    return list(inspect.signature(fn).parameters)


def test_overridden_and_called_hooks_keep_their_signatures():
    assert parameters(GRPOTrainer._generate_and_score_completions) == ["self", "inputs"]
    assert parameters(GRPOTrainer._calculate_rewards) == [
        "self",
        "inputs",
        "prompts",
        "completions",
        "completion_ids_list",
    ]
    assert parameters(GRPOTrainer._generate) == ["self", "prompts"]
    assert parameters(GRPOTrainer._compute_loss) == ["self", "model", "inputs"]


def test_what_atomic_checkpoints_rely_on_in_the_trainer():
    """`AtomicCheckpoints` stages a save by overriding `_get_output_dir`, which `_save_checkpoint` must use for the
    folder it writes and rotates in, and loads a finished run's weights with `_load_from_checkpoint`."""
    from transformers import Trainer

    source = inspect.getsource(Trainer._save_checkpoint)
    assert "run_dir = self._get_output_dir(trial=trial)" in source and "output_dir=run_dir" in source
    assert parameters(Trainer._load_from_checkpoint)[:2] == ["self", "resume_from_checkpoint"]


def test_compute_loss_unsqueezes_only_one_dimensional_advantages():
    source = inspect.getsource(GRPOTrainer._compute_loss)
    assert "if advantages.dim() == 1:" in source and "advantages = advantages.unsqueeze(1)" in source


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    config = parse_config(airl.Config, RUN + ["--output_dir", str(tmp_path_factory.mktemp("contract"))])
    trainer = airl.build_trainer(config)
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer's training loop
    return trainer


def test_generate_returns_prompt_and_completion_id_lists_first(trainer):
    prompts = [row["prompt"] for row in trainer.train_dataset.select(range(2))]
    out = trainer._generate(prompts)
    assert isinstance(out, tuple)
    prompt_ids, completion_ids = out[:2]
    assert len(prompt_ids) == len(completion_ids) == 2
    tok = trainer.processing_class
    assert prompt_ids[0] == tok(prompts[0], add_special_tokens=False)["input_ids"]
    assert all(isinstance(i, int) for ids in completion_ids for i in ids)
    assert all(1 <= len(ids) <= 8 for ids in completion_ids)


def test_generate_and_score_completions_returns_the_keys_airl_uses(trainer):
    inputs = [row for row in trainer.train_dataset.select([0, 0, 1, 1])]  # two groups of G = 2
    out = GRPOTrainer._generate_and_score_completions(trainer, inputs)
    for key in ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask", "advantages", "num_items_in_batch"):
        assert key in out, key
    assert out["advantages"].shape == (4,)
    assert out["completion_ids"].shape == out["completion_mask"].shape
    assert out["num_items_in_batch"].item() == out["completion_mask"].sum().item()
    assert trainer._verifier is not None and trainer._verifier.shape == (4,)  # our _calculate_rewards ran

    # AIRL's override replaces the advantages by (B, C) token advantages, zero on padding
    ours = trainer._generate_and_score_completions(inputs)
    assert ours["advantages"].shape == ours["completion_ids"].shape
    assert (ours["advantages"][ours["completion_mask"] == 0] == 0).all()
    assert torch.isfinite(ours["advantages"]).all()


def loss_inputs(trainer, advantages: torch.Tensor) -> dict:
    tok = trainer.processing_class
    prompt = torch.tensor([tok("Q: 1+1\n", add_special_tokens=False)["input_ids"]] * 2)
    completion = torch.tensor([tok("2\n#", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]] * 2)
    completion[1, 1] = tok.convert_tokens_to_ids("3")
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    return {
        "prompt_ids": prompt,
        "prompt_mask": torch.ones_like(prompt),
        "completion_ids": completion,
        "completion_mask": mask,
        "advantages": advantages,
        "num_items_in_batch": mask.sum(),
    }


def grads(model) -> list[torch.Tensor]:
    return [p.grad.clone() for p in model.parameters() if p.grad is not None]


def test_compute_loss_weighs_each_token_by_its_own_advantage(trainer):
    model = trainer.model
    assert trainer.loss_type == "dapo" and trainer.beta == 0.0
    per_token = torch.tensor([[1.0, 0.0, -2.0, 0.5], [0.0, 3.0, 0.0, 7.0]])  # the last one is padding
    inputs = loss_inputs(trainer, per_token)
    model.zero_grad(set_to_none=True)
    loss = trainer._compute_loss(model, inputs)
    loss.backward()
    got = grads(model)

    # At the sampling policy the ratio is 1, so the loss is -Σ A_t m_t log π(y_t) / N in value of its gradient,
    # and -Σ A_t m_t / N in value; tokens with A_t = 0 (or m_t = 0) contribute nothing.
    mask = inputs["completion_mask"].float()
    n = mask.sum()
    assert loss.item() == pytest.approx(-(per_token * mask).sum().item() / n.item(), rel=1e-5)
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    C = inputs["completion_ids"].shape[1]
    model.zero_grad(set_to_none=True)
    logits = model(input_ids=ids).logits[:, -C - 1 : -1] / trainer.temperature
    logp = logits.log_softmax(-1).gather(2, inputs["completion_ids"][..., None]).squeeze(2)
    (-(per_token * mask * logp).sum() / n).backward()
    expected = grads(model)
    assert len(got) == len(expected) > 0
    for g, e in zip(got, expected):
        assert torch.allclose(g, e, atol=1e-6)


def test_compute_loss_same_for_b_and_broadcast_bt_advantages(trainer):
    model = trainer.model
    per_row = torch.tensor([0.7, -1.3])
    model.zero_grad(set_to_none=True)
    a = trainer._compute_loss(model, loss_inputs(trainer, per_row))
    a.backward()
    ga = grads(model)
    model.zero_grad(set_to_none=True)
    b = trainer._compute_loss(model, loss_inputs(trainer, per_row[:, None].expand(2, 4).clone()))
    b.backward()
    gb = grads(model)
    assert a.item() == pytest.approx(b.item(), abs=1e-7)
    assert all(torch.allclose(x, y, atol=1e-7) for x, y in zip(ga, gb))
