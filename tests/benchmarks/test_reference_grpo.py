"""The plain-torch GRPO reference (benchmarks/reference_grpo.py): its advantages and loss on a hand-computed batch."""

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import reference_grpo as ref  # noqa: E402


def test_group_zscore_by_hand():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])  # two groups of 4
    a = ref.group_zscore(rewards, 4)
    std = math.sqrt(((0.75**2) + 3 * (0.25**2)) / 3)  # Bessel's correction, as TRL
    assert a[:4].tolist() == pytest.approx([0.75 / (std + 1e-4)] + [-0.25 / (std + 1e-4)] * 3)
    assert a[4:].tolist() == [0.0] * 4  # a group that cannot be told apart carries no advantage


def test_clipped_surrogate_by_hand():
    # two samples: A = +1 (2 tokens) and A = -2 (1 token; a padded position is masked)
    old = torch.log(torch.tensor([[0.5, 0.5], [0.4, 0.9]]))
    new = torch.log(torch.tensor([[0.75, 0.5], [0.2, 0.9]]))  # ratios 1.5, 1.0 | 0.5, (masked)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    adv = torch.tensor([1.0, -2.0])
    loss = ref.clipped_surrogate(new, old, adv, mask, epsilon=0.2)
    # token 1: min(1.5, 1.2) = 1.2; token 2: 1.0; token 3: min(0.5 * -2, 0.8 * -2) = -1.6 -> mean of -(1.2 + 1.0 - 1.6)
    assert loss.item() == pytest.approx(-(1.2 + 1.0 - 1.6) / 3)


def test_gradient_at_ratio_one_is_the_policy_gradient():
    logps = torch.log(torch.tensor([[0.5, 0.25]])).requires_grad_()
    loss = ref.clipped_surrogate(logps, logps.detach(), torch.tensor([2.0]), torch.ones(1, 2), epsilon=0.2)
    loss.backward()
    assert logps.grad[0].tolist() == pytest.approx([-1.0, -1.0])  # -A / (number of tokens) per token


def test_completion_logps_align_with_a_plain_forward():
    torch.manual_seed(0)
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(vocab_size=11, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2, pad_token_id=0))  # fmt: skip
    prompts, completions = [[3, 4, 5], [6]], [[7, 8], [9, 10, 2]]
    values, mask = ref.completion_logps(model, prompts, completions, pad_id=0)
    assert mask.tolist() == [[1, 1, 0], [1, 1, 1]]
    for b, (p, c) in enumerate(zip(prompts, completions)):
        logits = model(torch.tensor([p + c])).logits[0]
        expected = torch.log_softmax(logits[len(p) - 1 : -1], -1)[torch.arange(len(c)), torch.tensor(c)]
        assert values[b, : len(c)].tolist() == pytest.approx(expected.tolist(), abs=1e-5)
