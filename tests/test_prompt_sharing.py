"""rairl.prompt_sharing: running each distinct prompt once gives the plain forward's states and gradients."""

import pytest
import torch

from rairl.discriminator import token_logprobs
from rairl.prompt_sharing import grouped_order, prompt_groups, shared_prompt_hidden
from rairl.traces import build_batch


@pytest.fixture(scope="module")
def disc(tiny_disc):
    return tiny_disc(64, num_layers=2)[2]


def batch(prompts, responses):
    return build_batch(prompts, responses, [[] for _ in prompts], pad_id=0)


# two prompts of different lengths, shared by rows in any order; responses of different lengths (one empty)
PROMPTS = [[5, 6, 7], [8, 9], [5, 6, 7], [8, 9], [5, 6, 7]]
RESPONSES = [[10, 11, 12, 13], [14], [15, 16], [], [17, 18, 19, 20, 21]]


def plain_hidden(disc, b):
    base = disc.classifier.model
    return base(input_ids=b.input_ids, attention_mask=b.attention_mask).last_hidden_state


def test_groups_follow_first_appearance():
    b = batch(PROMPTS, RESPONSES)
    group, firsts = prompt_groups(b.input_ids, torch.tensor([3, 2, 3, 2, 3]))
    assert group.tolist() == [0, 1, 0, 1, 0] and firsts == [0, 1]


def test_states_equal_the_plain_forward_on_every_real_position(disc):
    b = batch(PROMPTS, RESPONSES)
    shared = shared_prompt_hidden(disc.classifier.model, b.input_ids, b.attention_mask, b.response_mask)
    plain = plain_hidden(disc, b)
    real = b.attention_mask.bool()
    assert shared.shape == plain.shape
    torch.testing.assert_close(shared[real], plain[real], atol=1e-5, rtol=1e-4)
    assert (shared[~real] == 0).all()


def plain_scores(disc, b):
    """The discriminator's equation on hidden states computed without sharing."""
    h = plain_hidden(disc, b)
    ell = token_logprobs(disc.lm_head, h, b.input_ids, b.response_mask)
    a1, a2 = disc.likelihood
    return disc.classifier.score(h).squeeze(-1) + a1 * ell + a2 * torch.cummin(ell, dim=1).values


def test_scores_and_gradients_equal_the_plain_forward(disc):
    b = batch(PROMPTS, RESPONSES)
    weights = torch.randn(b.input_ids.shape, generator=torch.Generator().manual_seed(0)) * b.attention_mask
    disc.eval()  # no dropout: both passes must see the same network

    def scores_and_grads(scores_fn):
        disc.zero_grad()
        s = scores_fn()
        (s * weights).sum().backward()
        return s.detach(), {n: p.grad.clone() for n, p in disc.named_parameters() if p.grad is not None}

    s_shared, g_shared = scores_and_grads(lambda: disc(b.input_ids, b.attention_mask, b.response_mask))
    s_plain, g_plain = scores_and_grads(lambda: plain_scores(disc, b))
    real = b.attention_mask.bool()
    torch.testing.assert_close(s_shared[real], s_plain[real], atol=1e-5, rtol=1e-4)
    assert g_shared.keys() == g_plain.keys() and g_shared
    for name in g_plain:
        torch.testing.assert_close(g_shared[name], g_plain[name], atol=1e-5, rtol=1e-3, msg=name)


def test_no_shared_prompt_means_no_second_path(disc):
    b = batch([[5, 6], [7, 8, 9]], [[10], [11, 12]])
    assert shared_prompt_hidden(disc.classifier.model, b.input_ids, b.attention_mask, b.response_mask) is None


def test_order_keeps_each_prompts_rows_together_longest_first():
    b = batch(PROMPTS, RESPONSES)  # lengths 7, 3, 5, 2, 8; prompt A rows 0, 2, 4 (longest 8), prompt B rows 1, 3
    assert grouped_order(b.input_ids, b.attention_mask, b.response_mask) == [4, 0, 2, 1, 3]


def test_order_of_distinct_prompts_is_the_length_order():
    b = batch([[5], [6, 7], [8]], [[1, 2], [3], [4, 5, 6]])  # lengths 3, 3, 4
    assert grouped_order(b.input_ids, b.attention_mask, b.response_mask) == [2, 0, 1]


def test_a_backbone_without_a_cache_argument_is_never_shared():
    class NoCache(torch.nn.Module):
        def forward(self, input_ids, attention_mask=None, **kwargs):
            raise AssertionError("must not be called")

    b = batch(PROMPTS, RESPONSES)
    assert shared_prompt_hidden(NoCache(), b.input_ids, b.attention_mask, b.response_mask) is None
