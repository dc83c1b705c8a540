import pytest
import torch

from rairl.rewards.backfill import backfill, clip
from rairl.rewards.granularity import granularity_mask

RESPONSE = torch.tensor(
    [
        [0, 0, 1, 1, 1, 1, 1, 1],  # prompt at 0..1, response at 2..7
        [0, 1, 1, 1, 1, 0, 0, 0],  # prompt at 0, response at 1..4, padding
    ],
    dtype=torch.bool,
)
VALUES = torch.arange(16, dtype=torch.float32).view(2, 8) * 10  # v[b, t] = 10 * (8b + t)


def naive_backfill(values, mask, response_mask):
    out = torch.zeros_like(values)
    B, T = values.shape
    for b in range(B):
        for t in range(T):
            if not response_mask[b, t]:
                continue
            later = [k for k in range(t, T) if mask[b, k]]
            out[b, t] = values[b, later[0]] if later else 0.0
    return out


def test_step_mask_spreads_each_value_back_over_its_step():
    mask = granularity_mask("step", RESPONSE, step_ends=[[3, 5], [2]])  # row 0: 3, 5, 7; row 1: 2, 4
    expected = torch.tensor(
        [
            [0, 0, 30, 30, 50, 50, 70, 70],
            [0, 100, 100, 120, 120, 0, 0, 0],
        ],
        dtype=torch.float32,
    )
    assert torch.equal(backfill(VALUES, mask, RESPONSE), expected)


def test_outcome_mask_gives_every_token_the_final_value():
    out = backfill(VALUES, granularity_mask("outcome", RESPONSE), RESPONSE)
    assert out[0].tolist() == [0, 0] + [70] * 6
    assert out[1].tolist() == [0] + [120] * 4 + [0, 0, 0]


def test_dense_mask_is_the_identity_on_the_response():
    out = backfill(VALUES, RESPONSE, RESPONSE)
    assert torch.equal(out, torch.where(RESPONSE, VALUES, 0.0))


def test_tokens_after_the_last_point_get_zero():
    mask = torch.zeros_like(RESPONSE)
    mask[0, 3] = True
    assert backfill(VALUES, mask, RESPONSE)[0].tolist() == [0, 0, 30, 30, 0, 0, 0, 0]


def test_matches_the_naive_definition_on_random_inputs():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        B, T = 3, 13
        values = torch.randn(B, T, generator=g)
        response = torch.zeros(B, T, dtype=torch.bool)
        for b in range(B):
            start = int(torch.randint(0, T, (1,), generator=g))
            length = int(torch.randint(0, T - start + 1, (1,), generator=g))
            response[b, start : start + length] = True
        mask = response & (torch.rand(B, T, generator=g) < 0.3)
        assert torch.equal(backfill(values, mask, response), naive_backfill(values, mask, response))


def test_contract_errors():
    with pytest.raises(ValueError, match=r"values must have the shape of response_mask \(B, T\) = \(2, 8\); got"):
        backfill(VALUES[:, :7], RESPONSE, RESPONSE)
    with pytest.raises(ValueError, match="mask must be a bool tensor"):
        backfill(VALUES, RESPONSE.float(), RESPONSE)
    outside = RESPONSE.clone()
    outside[1, 6] = True
    with pytest.raises(ValueError, match="column 6 of row 1, which is not a response token"):
        backfill(VALUES, outside, RESPONSE)


def test_clip():
    r = torch.tensor([[-3.0, -0.5, 0.0, 0.5, 3.0]])
    assert clip(r, 1.0).tolist() == [[-1.0, -0.5, 0.0, 0.5, 1.0]]
    assert torch.equal(clip(r, 0.0), r)  # 0: no clipping (the one spelling, as in RewardSettings and --reward_clip)
    with pytest.raises(ValueError, match="beta >= 0"):
        clip(r, -1.0)
