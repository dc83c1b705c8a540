"""Shared test settings and fixtures.

Settings: one torch thread (tiny models gain nothing from more, and several busy-waiting OpenMP threads on a loaded
2-core machine slow each other down by orders of magnitude).

Fixtures: the tiny 1-layer, 32-wide Llama every model test starts from (`tiny_lm`), a discriminator on it
(`tiny_disc`), the pair saved to disk once per session (`saved_tiny`), and small builders that tests of more than one
module use. Fixtures used by one folder only live in that folder's conftest.py."""

from __future__ import annotations

import os
import re
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # inherited by subprocess smoke tests

import pytest  # noqa: E402
import torch  # noqa: E402
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402

from rairl.discriminator import Discriminator  # noqa: E402
from rairl.models import ModelArgs, build_tiny  # noqa: E402
from rairl.traces import build_batch  # noqa: E402

torch.set_num_threads(1)


# --- tiny models ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_lm():
    """`tiny_lm(max_positions=512, seed=0, num_layers=1) -> (model, char tokenizer)`: a fresh hidden-32, 2-head Llama
    (`build_tiny`). Built anew on each call (milliseconds), so a test may train or change what it gets."""

    def build(max_positions: int = 512, seed: int = 0, num_layers: int = 1):
        args = ModelArgs(hidden_size=32, num_layers=num_layers, num_heads=2, max_position_embeddings=max_positions)
        return build_tiny(args, seed=seed)

    return build


@pytest.fixture(scope="session")
def tiny_disc(tiny_lm):
    """`tiny_disc(max_positions=512, seed=0, num_layers=1, head_seed=None, likelihood=True, **kwargs) -> (policy,
    tokenizer, disc)`: a fresh tiny policy and `Discriminator.from_causal_lm(policy, likelihood, **kwargs)`. The
    head's initial weights follow the policy's draws unless `head_seed` reseeds torch first."""

    def build(max_positions=512, seed=0, num_layers=1, head_seed=None, likelihood=True, **kwargs):
        model, tokenizer = tiny_lm(max_positions, seed, num_layers)
        if head_seed is not None:
            torch.manual_seed(head_seed)
        return model, tokenizer, Discriminator.from_causal_lm(model, likelihood, **kwargs)

    return build


@pytest.fixture(scope="session")
def saved_tiny(tiny_disc, tmp_path_factory):
    """`saved_tiny(max_positions=256, head_seed=None) -> root`: `root/disc` holds a saved tiny likelihood
    discriminator (with its tokenizer) and `root/policy` the policy it starts from (seed 0). Built once per session
    for each set of arguments and shared: copy it before changing anything in it."""
    built = {}

    def get(max_positions: int = 256, head_seed: int | None = None):
        key = (max_positions, head_seed)
        if key not in built:
            root = tmp_path_factory.mktemp(f"tiny{max_positions}")
            model, tokenizer, disc = tiny_disc(max_positions, head_seed=head_seed)
            disc.save_pretrained(root / "disc", tokenizer)
            model.save_pretrained(root / "policy")
            tokenizer.save_pretrained(root / "policy")
            built[key] = root
        return built[key]

    return get


@pytest.fixture(scope="module")
def tiny_policy(tiny_lm):
    """`(model, tokenizer)`: the default tiny policy (512 positions, seed 0) in eval mode, shared by a module."""
    model, tokenizer = tiny_lm()
    return model.eval(), tokenizer


@pytest.fixture(scope="session")
def make_disc():
    """`make_disc(policy, likelihood, temperature=1.0)`: a discriminator on `policy = (model, tokenizer)` in eval
    mode, its head drawn after `torch.manual_seed(1)`; a likelihood head's weights set off their initial values
    (0.3, 0.7), so that a save/load round trip shows them."""

    def make(policy, likelihood: bool, temperature: float = 1.0) -> Discriminator:
        torch.manual_seed(1)
        disc = Discriminator.from_causal_lm(policy[0], likelihood, temperature).eval()
        if likelihood:
            disc.likelihood.data = torch.tensor([0.3, 0.7])
        return disc

    return make


@pytest.fixture(scope="session")
def random_traces():
    """`random_traces(vocab, seed=0)`: two traces of 10 random token ids, a 4-token prompt and a 6-token response (the
    second row's response 4 tokens), step ends [1, 5] and [3]."""

    def make(vocab: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        ids = torch.randint(4, vocab, (2, 10), generator=g)
        prompts, responses = [ids[0, :4].tolist(), ids[1, :4].tolist()], [ids[0, 4:].tolist(), ids[1, 4:8].tolist()]
        return build_batch(prompts, responses, [[1, 5], [3]], pad_id=0)

    return make


# --- tokenizers -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def piece_tokenizer():
    """`piece_tokenizer(pieces) -> tokenizer` whose tokens are `pieces` (multi-character, may hold a newline), else
    single characters."""

    def build(pieces: list[str]) -> PreTrainedTokenizerFast:
        pattern = "|".join(re.escape(p) for p in sorted(pieces, key=len, reverse=True))
        specials = ["<pad>", "<s>", "</s>", "<unk>"]
        chars = [chr(c) for c in range(32, 127)] + ["\n"]
        vocab = {tok: i for i, tok in enumerate(dict.fromkeys(specials + pieces + chars))}
        core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
        core.pre_tokenizer = pre_tokenizers.Split(Regex(f"(?:{pattern})|(?m:.)"), behavior="isolated")
        core.decoder = decoders.Fuse()
        return PreTrainedTokenizerFast(
            tokenizer_object=core, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
        )

    return build


# --- data -------------------------------------------------------------------------------------------------------


def sample_rows(samples) -> list[dict]:
    """`rairl sample` rows of (question id, response, answer, correct, first error) tuples, samples numbered within
    each question in order, prompts made from the id."""
    rows, counts = [], {}
    for qid, response, answer, correct, first_error in samples:
        j = counts[qid] = counts.get(qid, -1) + 1
        prompt = f"Question: question {qid}\nAnswer:\n"
        rows.append({"id": qid, "sample": j, "question": f"question {qid}", "prompt": prompt, "response": response,
                     "answer": answer, "gold": "?", "correct": correct, "first_error": first_error})  # fmt: skip
    return rows


@pytest.fixture(scope="session")
def make_sample_rows():
    """`make_sample_rows(samples) -> rows`: `rairl sample` rows of (id, response, answer, correct, first error)."""
    return sample_rows


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The staged data sets (`../shared/data` beside the repository); a test that needs one skips without it."""
    return Path(__file__).resolve().parents[2] / "shared" / "data"
