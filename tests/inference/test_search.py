"""Reward-guided search (rairl.inference.search, `rairl search`): beam bookkeeping on a hand-made scorer, equal-budget
accounting, the PRM adapter's shape, bad input refused, and the command end to end on a tiny policy."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from rairl.cli import main
from rairl.commands import search as search_command
from rairl.discriminator import Discriminator
from rairl.inference.prm import ProcessRewardModel
from rairl.inference.search import Candidate, Searcher, check_boundary, check_budget, row_bytes, top_k
from rairl.reward_model import RewardModel
from rairl.reward_settings import RewardSettings
from rairl.tasks import TaskArgs, get_task


class Views:
    def __init__(self, steps):
        self.steps = steps


class StepValueScorer:
    """A hand-made scorer: a step's score is the number written at its end ("a=7" scores 7); calls are recorded."""

    def __init__(self):
        self.calls = []

    def score(self, prompts, responses, *, aggregates, step_reduce, partial):
        self.calls.append((list(responses), partial))
        return Views([[float(line.split("=")[-1]) for line in r.splitlines() if line.strip()] for r in responses])


def scripted(tree, m=2):
    """An `_expand` that grows each partial by its next M scripted steps, taken in order from `tree[partial]` (a
    step ending in '#' answers), each costing as many tokens as it has characters."""
    queues = {k: list(v) for k, v in tree.items()}

    def expand(prompts, parents):
        out = []
        for partial in (p.text for p in parents):
            children = []
            steps, queues[partial] = queues[partial][:m], queues[partial][m:]
            for step in steps:
                done = step.endswith("#")
                children.append(Candidate(partial + step.rstrip("#") + ("" if done else "\n"), done, tokens=len(step)))
            out.append(children)
        return out

    return expand


@pytest.fixture(scope="module")
def tiny(tiny_lm):
    return tiny_lm(256)


def searcher(tiny, scorer, m=2, how="last"):
    model, tokenizer = tiny
    return Searcher(model, tokenizer, scorer, "\n", m=m, how=how, max_steps=5, progress=False)


def test_top_k_keeps_the_best_and_breaks_ties_by_the_earlier_candidate():
    cands = [Candidate("a", score=1.0), Candidate("b", score=3.0), Candidate("c", score=3.0), Candidate("d", score=2.0)]
    assert [c.text for c in top_k(cands, 2)] == ["b", "c"]
    assert [c.text for c in top_k(cands, 3)] == ["b", "c", "d"]


def test_beam_search_keeps_the_top_scored_beams_and_the_answered_ones(tiny, monkeypatch):
    # N = 4, M = 2: the first round draws N = 4 steps from the prompt and keeps N/M = 2; each round after, the two
    # live beams draw 2 each. "x=9#" answers early with the best score and must be kept and chosen.
    tree = {
        "": ["a=1", "b=5", "c=5", "d=0"],
        "b=5\n": ["e=2", "x=9#"],
        "c=5\n": ["f=3", "g=7"],
        "c=5\ng=7\n": ["h=4#", "i=1#"],
        "c=5\nf=3\n": ["j=8#", "k=0#"],
    }
    s = searcher(tiny, StepValueScorer())
    monkeypatch.setattr(s, "_expand", scripted(tree))
    (result,) = s.run("beam", 4, ["Q"])
    assert result.response == "b=5\nx=9" and result.finished
    # round 1 keeps b and c (5, 5; not a or d), round 2 keeps x (9, answered, set aside) and g (7),
    # round 3 expands only g: h (4) is kept
    assert result.tokens == sum(map(len, ["a=1", "b=5", "c=5", "d=0", "e=2", "x=9#", "f=3", "g=7", "h=4#", "i=1#"]))
    assert result.scorer_calls == 4 + 4 + 2


def test_dvts_runs_independent_subtrees_of_width_one(tiny, monkeypatch):
    # N = 4, M = 2: two subtrees; the first draws a, b and keeps b; the second draws c, d and keeps d
    tree = {"": ["a=1", "b=2", "c=0", "d=3"], "b=2\n": ["e=1#", "f=5#"], "d=3\n": ["g=4#", "h=0#"]}
    s = searcher(tiny, StepValueScorer())
    monkeypatch.setattr(s, "_expand", scripted(tree))
    (result,) = s.run("dvts", 4, ["Q"])
    assert result.response == "b=2\nf=5" and result.finished
    assert result.tokens == 4 * len("a=1") + 4 * len("e=1#") and result.scorer_calls == 8


def test_equal_budget_every_method_draws_n_candidates_per_round(tiny, monkeypatch):
    drawn = []
    tree = {"": ["s=1"] * 8, "s=1\n": ["t=2#"] * 8}
    for method in ("beam", "dvts"):
        drawn.clear()
        s = searcher(tiny, StepValueScorer(), m=2)
        expand = scripted(tree)

        def counted(prompts, partials, expand=expand):
            drawn.append(len(partials))
            return expand(prompts, partials)

        monkeypatch.setattr(s, "_expand", counted)
        (result,) = s.run(method, 8, ["Q"])
        assert [d * 2 for d in drawn] == [8, 8]  # N = 8 candidates in each of the two rounds
        assert result.tokens == 8 * len("s=1") + 8 * len("t=2#")


def test_bad_budgets_and_missing_step_boundaries_are_refused(tiny, capsys):
    with pytest.raises(ValueError, match="N=6 must be a multiple of M=4"):
        check_budget("beam", 6, 4)
    check_budget("best_of_n", 6, 4)  # best-of-N has no beams
    with pytest.raises(ValueError, match="no step boundary"):
        check_boundary(tiny[1], None)
    vocab = {"[UNK]": 0, "a": 1, "b": 2, "</s>": 3}
    word = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    word.pre_tokenizer = pre_tokenizers.Whitespace()
    no_newline = PreTrainedTokenizerFast(tokenizer_object=word, unk_token="[UNK]", eos_token="</s>")
    with pytest.raises(ValueError, match="no token that writes the step boundary"):
        check_boundary(no_newline, "\n")
    assert main(["search", "--reward_model", "x", "--policy", "y", "--n", "6", "--m", "4"]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: beam: N=6 must be a multiple of M=4 (N/M beams, each expanded M ways)"
    ]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--limit", "-5"], r"--limit must be >= 0 \(0: every question\), got -5"),
        (
            ["--temperature", "0"],
            r"temperature must lie in \[0.0001, 10000\] \(sampling: softmax\(logits / T\)\), got 0.0",
        ),
        (["--temperature", "-1"], "temperature must lie in"),
        (["--temperature", "1e-300"], "temperature must lie in"),  # T is 0 in float32: logits / T is NaN
        (["--temperature", "nan"], "--temperature must be a finite number, got nan"),
        (["--max_steps", "0"], r"max_steps must be >= 1 \(rounds of search\), got 0"),
        (["--max_step_tokens", "0"], "max_step_tokens must be >= 1"),
        (["--m", "0"], "need N >= 1 and M >= 1"),
        (["--n", "0"], "need N >= 1 and M >= 1"),
        (["--n_eval", "0"], r"arith: need 1 <= n_train, n_eval <= 10,000,000 .* got 5000, 0, 9"),
    ],
)
def test_bad_numeric_options_are_one_line(capsys, flags, message):
    assert main(["search", "--reward_model", "x", "--policy", "y", "--n", "4", *flags]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert re.search(message, err), err


def test_a_search_that_would_not_fit_in_memory_is_refused_with_the_estimate(tiny, tmp_path):
    model, tokenizer = tiny
    small = Searcher(model, tokenizer, StepValueScorer(), "\n", m=2, max_steps=5, progress=False, memory_limit=2**20)
    per_trace = row_bytes(model, 5 + 5 * 32)  # "Q: 1?" is 5 tokens
    assert per_trace == 2 * 1 * 2 * 16 * 165 * 4 + 3 * 4 * model.config.vocab_size
    small.check_memory(4, 1, ["Q: 1?"])  # 4 traces fit in 1 MiB
    with pytest.raises(ValueError, match=r"search: N=1,?024 keeps 2,048 traces live at once \(N × 2 question"):
        small.check_memory(1024, 2, ["Q: 1?", "Q: 2?"])
    with pytest.raises(ValueError, match=r"over the 0.0 GiB allowed \(memory_limit\); lower --n \(about \d+ fit\)"):
        small.run("best_of_n", 1024, ["Q: 1?"])
    # the default limit is the free memory: a billion candidates per question never start
    with pytest.raises(ValueError, match=r"N=1000000000 keeps 1,000,000,000 traces live at once.*GiB free in"):
        searcher(tiny, StepValueScorer()).run("best_of_n", 10**9, ["Q: 1?"])


def test_the_prm_adapter_has_search_and_learns_shape(tiny):
    scorer = StepValueScorer()
    prm = ProcessRewardModel(scorer, prompt=lambda q: f"Q: {q}\n")
    out = prm.score(["q1", "q2"], [["a=1\n\nb=2", "c=3"], ["d=4"]])
    assert out == [[[1.0, 2.0], [3.0]], [[4.0]]]  # question → candidate → per-step scores
    assert scorer.calls == [(["a=1\n\nb=2", "c=3", "d=4"], True)]  # scored as partial traces
    assert prm.score(["q"], [[]]) == [[]]


def test_search_command_end_to_end(tiny, tmp_path):
    model, tokenizer = tiny
    policy, disc_dir = tmp_path / "policy", tmp_path / "disc"
    model.save_pretrained(policy)
    tokenizer.save_pretrained(policy)
    torch.manual_seed(0)
    disc = Discriminator.from_causal_lm(model, True, likelihood_from="reference", head_init="running_min")
    RewardModel(disc, tokenizer, RewardSettings(score_form="f")).save_pretrained(disc_dir)
    argv = ["search", "--policy", str(policy), "--reward_model", str(disc_dir), "--n", "2,4", "--m", "2", "--limit",
            "3", "--max_steps", "3", "--max_step_tokens", "8", "--output_dir", str(tmp_path / "out")]  # fmt: skip
    assert main(argv) == 0
    rows = [json.loads(line) for line in (tmp_path / "out" / "search.jsonl").read_text().splitlines()]
    assert len(rows) == 3 * 2 * 3 * 2  # methods × N × questions × scorers
    assert {r["method"] for r in rows} == {"best_of_n", "beam", "dvts"} and {r["scorer"] for r in rows} == {
        "reward",
        "likelihood",
    }
    assert all(r["tokens"] > 0 and r["scorer_calls"] > 0 for r in rows)
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert report["results"]["beam/reward/N=4"]["accuracy"]["n"] == 3
    assert sorted(report["beyond_likelihood"]) == sorted(f"{m}/N={n}" for m in ("best_of_n", "beam", "dvts")
                                                         for n in (2, 4))  # fmt: skip
    for entry in report["beyond_likelihood"].values():
        assert entry["same_answer"]["n"] == entry["reward_minus_likelihood"]["n"] == 3


def test_beyond_likelihood_compares_the_two_searches_question_by_question():
    row = lambda q, scorer, answer, correct: dict(id=q, method="beam", n=4, scorer=scorer, answer=answer,  # noqa: E731
                                                  correct=correct)  # fmt: skip
    rows = [row("a", "reward", "4", True), row("a", "likelihood", "4.0", True), row("b", "reward", "5", True),
            row("b", "likelihood", "6", False), row("c", "reward", None, False), row("c", "likelihood", "1", False),
            dict(row("a", "reward", "4", True), method="dvts")]  # fmt: skip
    out = search_command.beyond_likelihood(rows)
    assert list(out) == ["beam/N=4"]  # dvts ran with one scorer only
    assert out["beam/N=4"]["same_answer"]["mean"] == pytest.approx(1 / 3)  # "4" and "4.0" are the same number
    assert out["beam/N=4"]["reward_minus_likelihood"]["mean"] == pytest.approx(1 / 3)


def test_partial_traces_are_scored_without_eos(tiny):
    model, tokenizer = tiny
    disc = Discriminator.from_causal_lm(model, True, likelihood_from="reference", head_init="running_min")
    rm = RewardModel(disc, tokenizer, RewardSettings(score_form="f"), step_spans=get_task(TaskArgs()).step_spans)
    full, part = rm.score(["Q\n"], ["1+2=3\n"]), rm.score(["Q\n"], ["1+2=3\n"], partial=True)
    assert len(full.tokens[0]) == len(part.tokens[0]) + 1  # the EOS a finished trace carries
    assert np.allclose(full.tokens[0][:-1], part.tokens[0])  # causal: the prefix scores the same
