import json

import pytest

from rairl.cli import main
from rairl.commands.eval import Config, format_table, parse_ks, split_metrics
from rairl.models import ModelArgs, load_policy


def _rows(correct_by_question: dict[str, list[bool]]) -> list[dict]:
    return [{"id": q, "correct": c} for q, cs in correct_by_question.items() for c in cs]


def test_split_metrics_hand_computed():
    greedy = _rows({"a": [True], "b": [False], "c": [False]})
    sampled = _rows({"a": [True, True, False, False], "b": [False, False, False, True], "c": [False] * 4})
    m = split_metrics(greedy, sampled, n=4, ks=[1, 2, 4])
    assert list(m) == ["greedy", "pass@1", "pass@2", "pass@4"]
    assert m["greedy"]["mean"] == pytest.approx(1 / 3) and m["greedy"]["n"] == 3
    assert m["pass@1"]["mean"] == pytest.approx((2 / 4 + 1 / 4 + 0) / 3)
    # pass@2: a = 1 - C(2,2)/C(4,2) = 5/6, b = 1 - C(3,2)/C(4,2) = 1/2, c = 0
    assert m["pass@2"]["mean"] == pytest.approx((5 / 6 + 1 / 2) / 3)
    assert m["pass@4"]["mean"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="expected 4 samples"):
        split_metrics(greedy, sampled[:-1], n=4, ks=[1])


def test_parse_ks_and_config_validation():
    assert parse_ks("8, 1,4,4") == [1, 4, 8]
    with pytest.raises(ValueError, match="comma-separated"):
        parse_ks("1,x")
    with pytest.raises(ValueError, match=r"1..n=4"):
        Config(n=4, k="1,8")
    with pytest.raises(ValueError, match="0.0001 <= temperature"):
        Config(temperature=0)


def test_format_table():
    table = format_table({"test": {"greedy": {"mean": 0.5, "ci95": [0.25, 0.75], "n": 4}}})
    assert table.splitlines()[1].split() == ["test", "greedy", "0.500", "[0.250,", "0.750]", "4"]


def test_rairl_eval_cli(tmp_path, capsys):
    model, tokenizer = load_policy(ModelArgs(hidden_size=32, num_layers=1, num_heads=2))
    model.save_pretrained(tmp_path / "policy")
    tokenizer.save_pretrained(tmp_path / "policy")
    out = tmp_path / "eval"
    argv = ["eval", "--model", str(tmp_path / "policy"), "--limit", "3", "--n", "2", "--k", "1,2"]
    assert main(argv + ["--max_new_tokens", "16", "--n_train", "50", "--n_eval", "5", "--output_dir", str(out)]) == 0

    report = json.loads((out / "metrics.json").read_text())
    assert report["model"] == str(tmp_path / "policy") and report["task"] == "arith"
    assert list(report["splits"]) == ["test", "shift", "ood"]  # the arith task's eval splits
    for split, metrics in report["splits"].items():
        assert list(metrics) == ["greedy", "pass@1", "pass@2"]
        for s in metrics.values():
            assert set(s) == {"mean", "ci95", "n"} and s["n"] == 3
            assert s["ci95"][0] <= s["mean"] <= s["ci95"][1]
        greedy = [json.loads(x) for x in (out / f"{split}_greedy.jsonl").read_text().splitlines()]
        sampled = [json.loads(x) for x in (out / f"{split}_samples.jsonl").read_text().splitlines()]
        assert len(greedy) == 3 and len(sampled) == 6
    printed = capsys.readouterr().out
    assert "pass@2" in printed and "95% CI" in printed


def test_rairl_eval_cli_unknown_split(tmp_path, capsys):
    argv = ["eval", "--splits", "tset", "--hidden_size", "32", "--num_layers", "1", "--num_heads", "2"]
    assert main(argv + ["--n_train", "50", "--n_eval", "5", "--output_dir", str(tmp_path)]) == 1
    assert "unknown split(s) ['tset']" in capsys.readouterr().err
