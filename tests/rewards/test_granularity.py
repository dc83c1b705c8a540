import pytest
import torch
from tokenizers import Tokenizer, models, trainers

from rairl.rewards.granularity import GRANULARITIES, granularity_mask, last_response_index
from rairl.tasks.arith import ArithTask
from rairl.traces import step_end_tokens

# Row 0: left padding (2), prompt (2), response at columns 4..9.  Row 1: prompt (3), response at 3..7, padding.
RESPONSE = torch.tensor(
    [
        [0, 0, 0, 0, 1, 1, 1, 1, 1, 1],
        [0, 0, 0, 1, 1, 1, 1, 1, 0, 0],
    ],
    dtype=torch.bool,
)


def columns(mask):
    return [torch.nonzero(row).squeeze(1).tolist() for row in mask]


def test_registry_holds_the_four_granularities():
    assert set(GRANULARITIES) == {"outcome", "step", "interval", "dense"}


def test_last_response_index():
    empty = torch.zeros(1, 10, dtype=torch.bool)
    assert last_response_index(torch.cat([RESPONSE, empty])).tolist() == [9, 7, -1]


def test_outcome_marks_the_last_response_token():
    assert columns(granularity_mask("outcome", RESPONSE)) == [[9], [7]]


def test_step_marks_step_ends_and_the_last_token():
    mask = granularity_mask("step", RESPONSE, step_ends=[[5, 7], [4]])
    assert columns(mask) == [[5, 7, 9], [4, 7]]
    # A step end on the last token is not duplicated; a row may have no step ends.
    assert columns(granularity_mask("step", RESPONSE, step_ends=[[9], []])) == [[9], [7]]


def test_step_needs_valid_step_ends():
    with pytest.raises(ValueError, match="needs step_ends"):
        granularity_mask("step", RESPONSE)
    with pytest.raises(ValueError, match="one list per row"):
        granularity_mask("step", RESPONSE, step_ends=[[5]])
    with pytest.raises(ValueError, match="column 2 of row 0 is not a response token"):
        granularity_mask("step", RESPONSE, step_ends=[[2], []])
    with pytest.raises(ValueError, match="column 8 of row 1"):
        granularity_mask("step", RESPONSE, step_ends=[[], [8]])


def test_interval_counts_from_the_first_response_token():
    # k=3: response ordinals 3, 6 (columns 4+2=6, 4+5=9) in row 0; ordinal 3 (column 5) + last (7) in row 1.
    assert columns(granularity_mask("interval", RESPONSE, k=3)) == [[6, 9], [5, 7]]
    assert columns(granularity_mask("interval", RESPONSE, k=1)) == columns(RESPONSE)
    assert columns(granularity_mask("interval", RESPONSE, k=100)) == [[9], [7]]
    with pytest.raises(ValueError, match="k >= 1"):
        granularity_mask("interval", RESPONSE, k=0)


def test_dense_is_the_response_mask():
    assert torch.equal(granularity_mask("dense", RESPONSE), RESPONSE)


@pytest.mark.parametrize("name", ["outcome", "interval", "dense", "step"])
def test_masks_stay_inside_the_response_and_empty_rows_stay_empty(name):
    response = torch.cat([RESPONSE, torch.zeros(1, 10, dtype=torch.bool)])
    mask = granularity_mask(name, response, step_ends=[[5], [], []], k=2)
    assert not (mask & ~response).any()
    assert not mask[2].any()


def test_unknown_name_lists_known_ones():
    with pytest.raises(ValueError, match=r"unknown granularity 'stpe'.*'dense'.*Did you mean 'step'"):
        granularity_mask("stpe", RESPONSE)


def test_shape_contract():
    with pytest.raises(ValueError, match=r"bool tensor of shape \(B, T\); got dtype torch.int64, shape \(2, 10\)"):
        granularity_mask("dense", RESPONSE.long())
    with pytest.raises(ValueError, match=r"shape \(10,\)"):
        granularity_mask("dense", RESPONSE[0])


def test_step_end_tokens_with_one_token_per_character():
    response = "1+2=3\n3*2=6\n#### 6"
    spans = ArithTask().step_spans(response)  # [(0, 5), (6, 11), (12, 18)]
    offsets = [(i, i + 1) for i in range(len(response))]
    assert step_end_tokens(spans, offsets) == [4, 10, 17]


def test_step_end_tokens_with_tokens_straddling_step_boundaries():
    # text "ab=3\ncd=4\n#### 4"; tokens: "ab", "=3\nc" (straddles the first boundary), "d=4", "\n", "#### ", "4"
    spans = [(0, 4), (5, 9), (10, 16)]
    offsets = [(0, 2), (2, 6), (6, 9), (9, 10), (10, 15), (15, 16)]
    assert step_end_tokens(spans, offsets) == [1, 2, 5]


def test_step_end_tokens_skips_special_tokens_and_uncovered_characters():
    # A special token with empty offsets, and offsets that leave the newline and spaces uncovered.
    spans = [(0, 3), (4, 8)]
    offsets = [(0, 0), (0, 3), (4, 6), (7, 8), (0, 0)]
    assert step_end_tokens(spans, offsets) == [1, 3]
    # A step whose last character is an uncovered space maps to the nearest token before it.
    assert step_end_tokens([(0, 4)], [(0, 3)]) == [0]


def test_step_end_tokens_errors():
    with pytest.raises(ValueError, match="covered by no token"):
        step_end_tokens([(5, 8)], [(0, 3)])
    with pytest.raises(ValueError, match="text order"):
        step_end_tokens([(0, 3)], [(2, 3), (0, 2)])


def test_step_end_tokens_with_a_trained_bpe_tokenizer():
    """A BPE trained without pre-tokenisation merges across newlines; each step must still map to the token
    that holds its last character."""
    task = ArithTask(n_train=200)
    texts = [ex.expert for ex in task.examples("train")]
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=120, special_tokens=["<unk>"]))
    straddles = 0
    for text in texts[:50]:
        offsets = tokenizer.encode(text).offsets
        spans = task.step_spans(text)
        ends = step_end_tokens(spans, offsets)
        for (_, end), token in zip(spans, ends):
            a, b = offsets[token]
            assert a <= end - 1 < b
            straddles += b > end
    assert straddles > 0  # the test did exercise tokens that cross a step boundary
