"""Bad input ends in one line naming the file (and line, and field where there is one), never a traceback."""

from __future__ import annotations

import re

import pytest

from rairl.cli import main


def one_line_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and err.count("\n") == 0, err
    assert err.startswith("error: ")
    return err


def test_a_model_path_that_does_not_exist(capsys):
    err = one_line_error(capsys, ["eval", "--model", "/nonexistent/model"])
    assert err == (
        "error: --model /nonexistent/model: no such folder; expected a saved model folder (config.json and "
        "*.safetensors) or a Hugging Face id"
    )


@pytest.fixture(scope="module")
def saved_model(saved_tiny):
    return saved_tiny(64) / "policy"


def test_a_broken_model_folder(capsys, saved_model, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(saved_model, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    err = one_line_error(capsys, ["eval", "--model", str(broken)])
    assert f"{weights}: truncated: its tensors need" in err
    (broken / "config.json").write_text("{not json")
    err = one_line_error(capsys, ["eval", "--model", str(broken)])
    assert f"{broken / 'config.json'}, line 1: not valid JSON" in err
    (broken / "config.json").unlink()
    assert "no config.json in this folder" in one_line_error(capsys, ["eval", "--model", str(broken)])


def test_input_that_is_not_utf8_names_the_file_and_line(capsys, tmp_path):
    path = tmp_path / "traces.jsonl"
    path.write_bytes(b'{"prompt": "a", "response": "b"}\n\xff\xfe{"prompt": 1}\n')
    out = tmp_path / "scores.jsonl"
    err = one_line_error(capsys, ["score", "--reward_model", str(tmp_path), "--input", str(path), "--output", str(out)])
    assert err == f"error: {path}, line 2: not UTF-8 text (byte 0xff at byte 1 of the line); save the file as UTF-8"
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))  # nothing half-written


def test_a_config_file_that_is_not_utf8(capsys, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"seed: 1\nlr: \xff\n")
    with pytest.raises(SystemExit, match=r"c.yaml, line 2: not UTF-8 text"):
        main(["sft", "--config", str(path)])


def test_fuzzed_inputs_of_every_format_fail_cleanly():
    """benchmarks/fuzz_inputs.py at two dozen inputs per format (the full sweep runs 1,000 each): every file format,
    the reward server (each fuzzed request beside a good one), every command's numeric options and `rairl search`
    runs. No exception but the CLI's one-line user errors (or an HTTP 4xx) escapes, nothing hangs, and every
    refusal names its file, option or fault."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "fuzz_inputs.py"
    spec = importlib.util.spec_from_file_location("fuzz_inputs", script)
    fuzz = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fuzz)
    results = fuzz.fuzz(list(fuzz.TARGETS), n=24, seed=1)
    assert {"server", "options", "search", "settings", "report", "run_dir"} <= set(results)
    for fmt, r in results.items():
        assert r["inputs"] == 24 and r["escapes"] == 0 and r["unnamed"] == 0, (fmt, r)
    assert sum(r["user_errors"] for r in results.values()) > 200  # the mutations do break the inputs


@pytest.mark.parametrize(
    "argv, message",
    [
        (["serve", "--reward_model", "d", "--port", "70000"], r"error: --port must lie in \[1, 65535\], got 70000"),
        (["serve", "--reward_model", "d", "--port", "-1"], r"error: --port must lie in \[1, 65535\], got -1"),
        (["score", "--reward_model", "d", "--device", "tpu9"], "error: --device 'tpu9': not a device rairl runs on"),
        (["score", "--reward_model", "d", "--reward_clip", "nan"], "error: --reward_clip must be a finite number"),
        (["sample", "--model", "m", "--temperature", "inf"], "error: --temperature must be a finite number, got inf"),
        (["sft", "--num_heads", "0"], r"error: --num_heads must be >= 1, got 0"),  # not hidden_size % 0
        (
            ["grpo", "--num_generations", "0"],
            r"error: --num_generations must be >= 1 \(and GRPO needs at least 2",
        ),  # not TRL's 1/0
        (["eval", "--model", "m", "--n_eval", "0"], "error: arith: need 1 <= n_train, n_eval <= 10,000,000"),
    ],
)
def test_bad_numbers_and_devices_are_one_line(capsys, argv, message):
    assert re.match(message, one_line_error(capsys, argv))


def test_a_config_nested_too_deep_is_one_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 1\nlearning_rate: " + "[" * 5000 + "\n")  # PyYAML would recurse past Python's limit
    with pytest.raises(SystemExit, match=r"c.yaml, line 2: nested deeper than 100 levels"):
        main(["sft", "--config", str(path)])


def test_weights_that_do_not_fit_their_config_are_one_line(capsys, saved_tiny, tmp_path):
    import json
    import shutil

    broken = tmp_path / "disc"
    shutil.copytree(saved_tiny(64) / "disc", broken)
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "intermediate_size": 2 * config["intermediate_size"]}))
    traces = tmp_path / "traces.jsonl"
    traces.write_text('{"prompt": "a", "response": "b"}\n')
    argv = ["score", "--reward_model", str(broken), "--input", str(traces), "--output", str(tmp_path / "out.jsonl")]
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err  # (transformers' loading bar and size report come before it)
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"error: discriminator {broken}: its weights do not fit its config.json (tensor sizes differ)"
    )


def test_a_lone_surrogate_in_a_score_input_names_the_file_line_and_field(capsys, tmp_path):
    path = tmp_path / "traces.jsonl"
    path.write_text('{"prompt": "a", "response": "b"}\n{"prompt": "a", "response": "1+1=2\\ud800"}\n')
    argv = ["score", "--reward_model", str(tmp_path), "--input", str(path), "--output", str(tmp_path / "out.jsonl")]
    err = one_line_error(capsys, argv)
    assert err == f"error: {path}, line 2, field 'response': a lone surrogate (\\ud800) is not text; save valid Unicode"
