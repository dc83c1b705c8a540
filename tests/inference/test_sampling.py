import json

import pytest
import torch

from rairl.cli import main
from rairl.commands.sample import Config
from rairl.inference.sampling import generate, sample_rows, sample_to_file
from rairl.models import ModelArgs, load_policy
from rairl.tasks import Example, TaskArgs, get_task

PROMPTS = ["Question: 1+2\nAnswer:\n", "Q: a much longer prompt with many characters 12345\nAnswer:\n", "x"]


@pytest.fixture
def tiny(tiny_lm):
    """A 1-layer, 32-wide policy whose large random weights make its greedy output depend on the prompt."""
    model, tokenizer = tiny_lm(256)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
    return model, tokenizer


def greedy_one(model, tokenizer, prompt, **kw):
    return generate(model, tokenizer, [prompt], greedy=True, progress=False, **kw)[0][0]


def test_left_padded_batch_matches_single_prompts(tiny):
    model, tokenizer = tiny
    batched = generate(model, tokenizer, PROMPTS, greedy=True, max_new_tokens=12, progress=False)
    singles = [greedy_one(model, tokenizer, p, max_new_tokens=12) for p in PROMPTS]
    assert batched == [[s] for s in singles]
    assert len(set(singles)) == 3  # the outputs differ, so a mix-up of order would show
    assert tokenizer.padding_side == "right"  # restored after the call


def test_n_samples_per_prompt_in_input_order(tiny):
    model, tokenizer = tiny
    singles = [greedy_one(model, tokenizer, p, max_new_tokens=8) for p in PROMPTS]
    # a near-zero temperature samples the argmax: each prompt's n samples equal its greedy output, in input order
    cold = generate(model, tokenizer, PROMPTS, n=2, temperature=1e-4, max_new_tokens=8, batch_size=4, progress=False)
    assert cold == [[s, s] for s in singles]
    hot = generate(model, tokenizer, PROMPTS, n=3, max_new_tokens=8, batch_size=2, progress=False)
    assert [len(group) for group in hot] == [3, 3, 3]
    assert all(isinstance(r, str) and len(r) <= 8 for group in hot for r in group)


def test_stops_at_eos_and_strips_it(tiny):
    model, tokenizer = tiny
    before = greedy_one(model, tokenizer, PROMPTS[0], max_new_tokens=12)
    # make EOS outscore the third generated character wherever that character's logit is positive
    third = tokenizer.convert_tokens_to_ids(before[2])
    with torch.no_grad():
        model.lm_head.weight[tokenizer.eos_token_id] = 1.5 * model.lm_head.weight[third]
    after = greedy_one(model, tokenizer, PROMPTS[0], max_new_tokens=12)
    assert len(after) < len(before) and before.startswith(after)
    batch = tokenizer([PROMPTS[0]], return_tensors="pt")
    raw = model.generate(**batch, do_sample=False, max_new_tokens=12)[0, batch["input_ids"].shape[1] :].tolist()
    assert raw[len(after)] == tokenizer.eos_token_id


def test_restores_training_mode(tiny):
    model, tokenizer = tiny
    model.train()
    generate(model, tokenizer, ["a"], greedy=True, max_new_tokens=2, progress=False)
    assert model.training


def test_too_long_prompt_names_the_example(tiny):
    model, tokenizer = tiny  # 256 positions
    task = get_task(TaskArgs())
    long = Example(id="too-long", question="x" * 230, answer="1")
    with pytest.raises(ValueError, match="'too-long' has 249 tokens.*256 positions.*room for 240"):
        sample_rows(model, tokenizer, task, [long], greedy=True, max_new_tokens=16, progress=False)


def test_rejects_bad_options(tiny):
    model, tokenizer = tiny
    with pytest.raises(ValueError, match="n=1"):
        generate(model, tokenizer, ["a"], n=2, greedy=True)
    with pytest.raises(ValueError, match="0.0001 <= temperature <= 10000"):
        generate(model, tokenizer, ["a"], temperature=0.0)
    with pytest.raises(ValueError, match="got 1e-300"):  # logits / 1e-300 overflow: NaN, then torch.multinomial fails
        generate(model, tokenizer, ["a"], temperature=1e-300)
    assert generate(model, tokenizer, [], n=2) == []
    with pytest.raises(ValueError, match="--greedy"):
        Config(temperature=0.0)


def test_sample_rows_schema(tiny):
    model, tokenizer = tiny
    task = get_task(TaskArgs(n_train=50, n_eval=4))
    examples = task.examples("test")[:2]
    rows = sample_rows(model, tokenizer, task, examples, n=2, max_new_tokens=8, progress=False)
    assert [(r["id"], r["sample"]) for r in rows] == [(e.id, j) for e in examples for j in range(2)]
    for r in rows:
        ex = next(e for e in examples if e.id == r["id"])
        assert r["prompt"] == task.prompt(ex) and r["gold"] == ex.answer and r["question"] == ex.question
        assert r["answer"] == task.extract_answer(r["response"])
        assert r["correct"] == task.verify(r["response"], ex)
        assert r["first_error"] == task.first_error(r["response"], ex)


def test_expert_answer_fits_default_max_new_tokens():
    # the longest OOD expert response plus EOS must fit in the default 64 new tokens
    _, tokenizer = load_policy(ModelArgs(hidden_size=32, num_layers=1, num_heads=2))
    task = get_task(TaskArgs(n_train=200))
    longest = max(len(tokenizer(ex.expert)["input_ids"]) + 1 for ex in task.examples("ood"))
    assert longest <= Config().max_new_tokens


def test_rairl_sample_cli(tmp_path):
    model, tokenizer = load_policy(ModelArgs(hidden_size=32, num_layers=1, num_heads=2))
    model.save_pretrained(tmp_path / "policy")
    tokenizer.save_pretrained(tmp_path / "policy")
    out = tmp_path / "samples.jsonl"
    argv = ["sample", "--model", str(tmp_path / "policy"), "--limit", "3", "--n", "2", "--max_new_tokens", "16"]
    assert main(argv + ["--n_train", "50", "--n_eval", "5", "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 6
    fields = {"id", "sample", "question", "prompt", "response", "answer", "gold", "correct", "first_error"}
    assert set(rows[0]) == fields
    assert [r["sample"] for r in rows] == [0, 1] * 3
    assert len({r["id"] for r in rows}) == 3
    assert all(isinstance(r["first_error"], int) and r["first_error"] >= -1 for r in rows)  # arith checks every step


def test_rairl_sample_cli_reports_bad_options(tmp_path, capsys):
    assert main(["sample", "--n", "2", "--greedy", "--output", str(tmp_path / "s.jsonl")]) == 1
    assert "--n 1" in capsys.readouterr().err


def arith_examples(count: int):
    task = get_task(TaskArgs(task="arith", n_eval=count))
    return task, task.examples("test")


def sample_file(tiny, examples, task, path, **kw):
    model, tokenizer = tiny
    options = dict(settings={"model": "tiny"}, seed=3, n=2, chunk=2, temperature=1.0, max_new_tokens=8)
    return sample_to_file(model, tokenizer, task, examples, path, **{**options, **kw})


def test_sample_to_file_resumes_after_a_crash_with_the_same_rows(tiny, tmp_path, monkeypatch):
    task, examples = arith_examples(5)  # chunks of 2: [0, 1], [2, 3], [4]
    reference = sample_file(tiny, examples, task, tmp_path / "ref.jsonl")
    assert [(r["id"], r["sample"]) for r in reference] == [(ex.id, j) for ex in examples for j in range(2)]

    import rairl.inference.sampling as sampling

    calls = []
    real = sampling.sample_rows

    def crash_on_second_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process dies after chunk 0 was written
        return real(*args, **kwargs)

    monkeypatch.setattr(sampling, "sample_rows", crash_on_second_chunk)
    out = tmp_path / "run.jsonl"
    with pytest.raises(KeyboardInterrupt):
        sample_file(tiny, examples, task, out)
    partial = tmp_path / "run.jsonl.partial"
    assert not out.exists() and len(partial.read_text().splitlines()) == 4  # chunk 0: 2 examples × 2 samples
    with partial.open("a") as f:
        f.write('{"id": "arith-test-2", "sam')  # a write cut short by the crash
    calls.clear()
    monkeypatch.setattr(sampling, "sample_rows", lambda *a, **k: calls.append(1) or real(*a, **k))
    resumed = sample_file(tiny, examples, task, out)
    assert resumed == reference and len(calls) == 2  # chunks [2, 3] and [4]: chunk 0 was not sampled again
    assert [json.loads(line) for line in out.read_text().splitlines()] == reference
    assert not partial.exists() and not (tmp_path / "run.jsonl.partial.json").exists()


def test_sample_to_file_refuses_to_resume_with_other_options(tiny, tmp_path):
    task, examples = arith_examples(3)
    out = tmp_path / "run.jsonl"
    (tmp_path / "run.jsonl.partial").write_text("")
    (tmp_path / "run.jsonl.partial.json").write_text(
        json.dumps({"model": "tiny", "n": 2, "chunk": 2, "seed": 4, "ids": [ex.id for ex in examples]})
    )
    with pytest.raises(ValueError, match=r"run\.jsonl\.partial was sampled with other options \(seed differ\)"):
        sample_file(tiny, examples, task, out)
