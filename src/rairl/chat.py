r"""Chat templates: how a task's plain prompt x becomes the text a chat model is conditioned on.

    rendered(x) = template([{"role": "user", "content": x}], add_generation_prompt=True)   if the tokenizer has one
    rendered(x) = x                                                                         otherwise

and the response y is exactly the tokens after the rendered prompt (then EOS). Files, the scoring API and reward
functions carry the *plain* prompt x; each model renders it with its own tokenizer's template when it tokenises, so
a trace sampled by one model can be scored by another with a different template. TRL's trainers get the same
rendering: SFT the rendered text, GRPO/R-AIRL the user turn in TRL's conversational format (TRL renders it with the
same call; `tests/models/test_smollm2.py` checks the ids are equal).

A template whose output depends on the clock (`strftime_now`, as Llama 3.1's does for its system prompt) would make
every score depend on the day it is computed: `check_template` renders it under two dates and refuses it.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from typing import Any
from unittest import mock

Message = dict[str, str]


def has_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def user_turn(prompt: str) -> list[Message]:
    """The conversation a plain prompt stands for: one user turn."""
    return [{"role": "user", "content": prompt}]


def render_prompt(tokenizer, prompt: str) -> str:
    """`rendered(x)`: the tokenizer's chat template around `prompt`, ending with the generation prompt."""
    if not has_template(tokenizer):
        return prompt
    return tokenizer.apply_chat_template(user_turn(prompt), tokenize=False, add_generation_prompt=True)


def render_prompts(tokenizer, prompts: Sequence[str]) -> list[str]:
    return [render_prompt(tokenizer, p) for p in prompts]


def trainer_prompt(tokenizer, prompt: str) -> str | list[Message]:
    """A prompt as a TRL dataset row holds it: TRL's conversational format when the tokenizer has a template."""
    return user_turn(prompt) if has_template(tokenizer) else prompt


def plain_text(value: str | list[Message]) -> str:
    """The text of a TRL prompt or completion: a string as it is; of a conversation, the last message's content
    (a prompt's user turn, a completion's assistant turn)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and isinstance(value[-1], dict) and isinstance(value[-1].get("content"), str):
        return value[-1]["content"]
    raise ValueError(f"expected a string or a list of chat messages with text content, got {value!r:.80}")


class _FixedClock(_dt.datetime):
    """`datetime` whose `now()` is a fixed instant (set on the subclass)."""

    instant: _dt.datetime

    @classmethod
    def now(cls, tz: Any = None) -> _dt.datetime:
        return cls.instant


def _render_at(tokenizer, instant: _dt.datetime) -> str:
    import transformers.utils.chat_template_utils as ctu

    clock = type("Clock", (_FixedClock,), {"instant": instant})
    with mock.patch.object(ctu, "datetime", clock, create=True):
        return tokenizer.apply_chat_template(user_turn("x"), tokenize=False, add_generation_prompt=True)


def check_template(tokenizer, source: str) -> None:
    """Refuse a chat template whose output changes with the date (rendered at two instants years apart)."""
    if not has_template(tokenizer):
        return
    early, late = _dt.datetime(2001, 2, 3, 4, 5, 6), _dt.datetime(2037, 11, 12, 13, 14, 15)
    if _render_at(tokenizer, early) != _render_at(tokenizer, late):
        raise ValueError(
            f"tokenizer of {source}: its chat template renders differently at different times (it inserts the date or "
            "other changing text), so scores would depend on when they are computed; pin it: replace that expression "
            "in chat_template (tokenizer_config.json or chat_template.jinja) by a fixed string"
        )
