"""Chat templates (`rairl.chat`): plain prompts stay plain without a template; a template that changes with the date
is refused when a tokenizer loads. The SmolLM2 template in every path is tested in `models/test_smollm2.py`."""

from __future__ import annotations

import pytest

from rairl.chat import check_template, plain_text, render_prompt, trainer_prompt, user_turn
from rairl.models import build_char_tokenizer, load_tokenizer
from rairl.traces import encode_texts

FIXED = (
    "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}[assistant] {% endif %}"
)
DATED = "Today is {{ strftime_now('%d %b %Y') }}.\n" + FIXED
# Llama 3.1's pattern: a date argument with a clock fallback
FALLBACK = (
    "{% if not date_string is defined %}{% set date_string = strftime_now('%Y-%m-%d') %}{% endif %}{{ date_string }}\n"
    + FIXED
)


def test_without_a_template_prompts_stay_plain():
    tok = build_char_tokenizer()
    assert render_prompt(tok, "Q: 1+1?\n") == "Q: 1+1?\n"
    assert trainer_prompt(tok, "Q") == "Q" and trainer_prompt(None, "Q") == "Q"
    check_template(tok, "tiny")  # nothing to check


def test_a_fixed_template_wraps_the_prompt_and_the_response_follows_the_generation_prompt():
    tok = build_char_tokenizer()
    tok.chat_template = FIXED
    assert render_prompt(tok, "1+1?") == "[user] 1+1?\n[assistant] "
    assert trainer_prompt(tok, "1+1?") == user_turn("1+1?")
    check_template(tok, "fixed")
    batch = encode_texts(tok, ["1+1?"], ["2\n#### 2"], [[(0, 1), (2, 8)]])
    ids = batch.input_ids[0, batch.attention_mask[0].bool()]
    assert tok.decode(ids[~batch.response_mask[0][: len(ids)]]) == "[user] 1+1?\n[assistant] "
    assert tok.decode(batch.input_ids[0, batch.response_mask[0]], skip_special_tokens=True) == "2\n#### 2"


@pytest.mark.parametrize("template", [DATED, FALLBACK], ids=["strftime_now", "date_string fallback"])
def test_a_template_that_inserts_the_date_is_refused_where_the_tokenizer_loads(template, tmp_path):
    tok = build_char_tokenizer()
    tok.chat_template = template
    with pytest.raises(ValueError, match="renders differently at different times"):
        check_template(tok, "dated")
    tok.save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{}")  # a model folder, as load_tokenizer expects
    with pytest.raises(ValueError, match=f"tokenizer of {tmp_path}: its chat template renders differently"):
        load_tokenizer(str(tmp_path))


def test_plain_text_reads_trl_prompts_and_completions():
    assert plain_text("x") == "x"
    assert plain_text([{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]) == "q"
    assert plain_text([{"role": "assistant", "content": "a"}]) == "a"
    for bad in ([], [{"role": "user"}], 3):
        with pytest.raises(ValueError, match="chat messages"):
            plain_text(bad)
