"""A character-level tokenizer built with `tokenizers`, saved in the standard format (`AutoTokenizer` loads it).

One token per printable ASCII character and newline; anything else maps to `<unk>`. Character tokens make
step boundaries exact (a step's last character is a token), which the step-granularity reward relies on.
"""

from __future__ import annotations

import string

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
CHARACTERS = sorted(set(string.printable) - set("\t\r\x0b\x0c"))  # printable ASCII, space and newline


def build_char_tokenizer(model_max_length: int = 512) -> PreTrainedTokenizerFast:
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS.values())}
    for ch in CHARACTERS:
        vocab.setdefault(ch, len(vocab))
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("(?m)."), behavior="isolated")
    core.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, model_max_length=model_max_length, padding_side="right", **SPECIAL_TOKENS
    )
    return tokenizer
