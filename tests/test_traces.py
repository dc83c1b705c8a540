"""rairl.traces: packing prompt + response, the response mask, step ends, character offsets and projection
between tokenizers. The char tokenizer has one token per character, so every column is computed by hand."""

from __future__ import annotations

import pytest
import torch

from rairl.models import build_char_tokenizer
from rairl.tasks.base import line_spans
from rairl.traces import build_batch, encode_ids, encode_texts, project_values, token_offsets

PROMPT = "Q: 2+5, *8?\nA:\n"  # 15 characters
RESPONSE = "2+5=7\n7*8=56\n#### 56"  # steps (0, 5), (6, 12), (13, 20): last characters 4, 11, 19
P, R = len(PROMPT), len(RESPONSE)


@pytest.fixture(scope="module")
def char_tok():
    return build_char_tokenizer()


@pytest.fixture(scope="module")
def word_tok(piece_tokenizer):
    """ "56" and "####" one token each, every other character its own; decoding fuses them back exactly."""
    return piece_tokenizer(["56", "####"])


def test_setup_step_spans_and_char_tokens(char_tok):
    assert line_spans(RESPONSE) == [(0, 5), (6, 12), (13, 20)]
    assert len(char_tok(RESPONSE, add_special_tokens=False)["input_ids"]) == R


# --- encode_texts / encode_ids ---------------------------------------------------------------------------------


def test_encode_texts_response_mask_and_step_ends_by_hand(char_tok):
    batch = encode_texts(char_tok, [PROMPT, "Q\n"], [RESPONSE, "1"], [line_spans(RESPONSE), line_spans("1")])
    width = P + R + 1  # + EOS
    assert batch.input_ids.shape == (2, width)
    # row 0: prompt columns 0..14, response 15..34, EOS at 35
    assert batch.response_mask[0].nonzero().squeeze(1).tolist() == list(range(P, P + R + 1))
    assert batch.input_ids[0, P + R].item() == char_tok.eos_token_id
    assert batch.step_ends[0] == [P + 4, P + 11, P + 19]
    assert char_tok.decode(batch.input_ids[0, P + 11]) == "6"  # the last character of step 2, "7*8=56"
    # row 1: "Q\n" + "1" + EOS, right-padded
    assert batch.attention_mask[1].tolist() == [1, 1, 1, 1] + [0] * (width - 4)
    assert batch.response_mask[1].nonzero().squeeze(1).tolist() == [2, 3]
    assert batch.step_ends[1] == [2]
    assert (batch.input_ids[1, 4:] == char_tok.pad_token_id).all()


def test_encode_texts_without_eos(char_tok):
    batch = encode_texts(char_tok, [PROMPT], [RESPONSE], [line_spans(RESPONSE)], add_eos=False)
    assert batch.input_ids.shape == (1, P + R)
    assert int(batch.response_mask.sum()) == R


def test_encode_ids_packs_ids_as_they_are_and_finds_step_ends(char_tok):
    prompt_ids = char_tok(PROMPT, add_special_tokens=False)["input_ids"]
    response_ids = char_tok(RESPONSE, add_special_tokens=False)["input_ids"] + [char_tok.eos_token_id]
    batch, texts = encode_ids(char_tok, [prompt_ids], [response_ids], line_spans)
    assert texts == [RESPONSE]
    assert batch.input_ids[0].tolist() == prompt_ids + response_ids
    assert batch.step_ends == [[P + 4, P + 11, P + 19]]
    same = encode_texts(char_tok, [PROMPT], [RESPONSE], [line_spans(RESPONSE)])
    assert torch.equal(batch.input_ids, same.input_ids) and torch.equal(batch.response_mask, same.response_mask)


def test_select_and_trim_drop_shared_padding(char_tok):
    batch = encode_texts(char_tok, [PROMPT, "Q\n"], [RESPONSE, "1"], [line_spans(RESPONSE), line_spans("1")])
    short = batch.select([1])
    assert short.input_ids.shape == (1, 4) and short.step_ends == [[2]]


# --- build_batch -----------------------------------------------------------------------------------------------


def test_build_batch_cuts_the_prompt_from_the_left_never_the_response():
    batch = build_batch([[1, 2, 3, 4]], [[5, 6, 7]], [[0, 2]], pad_id=0, max_length=5)
    assert batch.input_ids.tolist() == [[3, 4, 5, 6, 7]]
    assert batch.response_mask.tolist() == [[False, False, True, True, True]]
    assert batch.step_ends == [[2, 4]]  # response indices 0 and 2, after a 2-token prompt


def test_build_batch_keeps_short_traces_whole():
    batch = build_batch([[1, 2], [1]], [[5], [6, 7]], [[0], [1]], pad_id=9, max_length=5)
    assert batch.input_ids.tolist() == [[1, 2, 5], [1, 6, 7]]
    assert batch.step_ends == [[2], [2]]


def test_build_batch_refuses_a_response_longer_than_max_length():
    with pytest.raises(ValueError, match=r"trace 0: the response alone has 6 tokens, over max_length=5"):
        build_batch([[1]], [[5, 6, 7, 8, 9, 10]], [[5]], pad_id=0, max_length=5)


# --- token_offsets ---------------------------------------------------------------------------------------------


def test_token_offsets_fast_path_gives_the_tokenizer_offsets(char_tok):
    ids = char_tok("2+5=7", add_special_tokens=False)["input_ids"] + [char_tok.eos_token_id]
    text, spans = token_offsets(char_tok, ids)
    assert text == "2+5=7"
    assert spans == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 5)]  # EOS: zero width at the end


def test_token_offsets_incremental_fallback_for_a_non_canonical_tokenisation(word_tok):
    vocab = word_tok.get_vocab()
    canonical = word_tok("=56", add_special_tokens=False)["input_ids"]
    assert canonical == [vocab["="], vocab["56"]]
    split = [vocab["="], vocab["5"], vocab["6"]]
    # "=", "5", "6" decodes to "=56", which re-tokenises as ["=", "56"]: the ids differ, so the spans come from
    # incremental decoding.
    text, spans = token_offsets(word_tok, split + [word_tok.eos_token_id])
    assert text == "=56"
    assert spans == [(0, 1), (1, 2), (2, 3), (3, 3)]


# --- project_values --------------------------------------------------------------------------------------------


def test_project_values_char_to_words_takes_the_source_token_of_each_last_character(char_tok, word_tok):
    text = "7*8=56\n#### 56"
    src = char_tok(text, add_special_tokens=False)["input_ids"] + [char_tok.eos_token_id]
    dst = word_tok(text, add_special_tokens=False)["input_ids"] + [word_tok.eos_token_id]
    values = torch.arange(len(src), dtype=torch.float32)  # value k on character k (EOS: 14)
    out = project_values(values, char_tok, src, word_tok, dst)
    # word tokens: 7 * 8 = 56 \n #### ' ' 56 EOS; last characters 0 1 2 3 5 6 10 11 13, EOS -> last value
    assert [word_tok.decode([i]) for i in dst[:-1]] == ["7", "*", "8", "=", "56", "\n", "####", " ", "56"]
    assert out.tolist() == [0, 1, 2, 3, 5, 6, 10, 11, 13, 14]


def test_project_values_words_to_chars_takes_the_word_holding_each_character(char_tok, word_tok):
    text = "=56\n####"
    src = word_tok(text, add_special_tokens=False)["input_ids"] + [word_tok.eos_token_id]  # = 56 \n #### EOS
    dst = char_tok(text, add_special_tokens=False)["input_ids"] + [char_tok.eos_token_id]
    values = torch.tensor([10.0, 20.0, 30.0, 40.0, 50.0])
    out = project_values(values, word_tok, src, char_tok, dst)
    assert out.tolist() == [10, 20, 20, 30, 40, 40, 40, 40, 50]
