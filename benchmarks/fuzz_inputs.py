"""A seeded mutator over every kind of file the commands read (issue: crash-safe runs). Each mutated file goes
through the very function the command reads it with; the outcome must be a clean read or a *user error*: an
exception the CLI turns into one line (`ValueError`, `OSError`, `SafetensorError`, or `SystemExit` for a config)
whose message names the file. Anything else (a `KeyError`, `TypeError`, `AttributeError`, ...) escapes the CLI as
a traceback and is counted as an escape.

    .venv/bin/python benchmarks/fuzz_inputs.py --n 1000        # 1,000 inputs per format (the full sweep)
    .venv/bin/python benchmarks/fuzz_inputs.py --n 30          # what the CI test runs

Formats: each task's JSONL loader (gsm8k, countdown, mmlu_pro, medreason, jsonl), ProcessBench files, `rairl
sample` files (rerank), `rairl score` input, YAML configs, and model folders (config.json and safetensors bytes
mutated, files deleted). Seeds are valid rows from `../shared/data` (or small built-in rows when it is absent).
Mutations: byte flips, inserted bytes (invalid UTF-8 included), truncation, dropped / duplicated / shuffled lines,
fields removed or retyped (null, number, list, object, empty or huge strings). Model folders are loaded as the
commands load a reward model (`RewardModel.from_pretrained`: discriminator, tokenizer, settings). Writes `--output`.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import shutil
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safetensors import SafetensorError

from rairl.config import load_yaml
from rairl.evaluation.processbench import read_processbench
from rairl.inference.rerank import read_samples
from rairl.inference.scoring import read_traces
from rairl.tasks import TaskArgs, get_task

USER_ERRORS = (ValueError, OSError, SafetensorError, SystemExit)
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

SEED_ROWS: dict[str, list[dict[str, Any]]] = {
    "gsm8k": [{"question": "Tom has 3 apples and buys 2. How many?", "answer": "3+2=<<3+2=5>>5\n#### 5"}],
    "countdown": [{"nums": [3, 5, 7], "target": 22, "completion": "3*5=15\n15+7=22\n#### 22"}],
    "mmlu_pro": [
        {
            "question": "2+2?",
            "options": ["3", "4", "5"],
            "answer": "B",
            "answer_index": 1,
            "cot_content": "A: 2+2=4. The answer is (B).",
        }
    ],
    "medreason": [
        {
            "question": "Which vitamin? A. C B. D",
            "answer": "B",
            "options": "A. C\nB. D",
            "reasoning": "Sunlight makes vitamin D.",
        }
    ],
    "jsonl": [{"question": "1+1?", "answer": "2", "trace": "1+1=2"}],
    "processbench": [{"id": "x", "problem": "1+1?", "steps": ["1+1=2", "so 2"], "label": -1}],
    "samples": [
        {"id": "q1", "sample": 0, "prompt": "Q: 1+1?\n", "response": "1+1=2\n#### 2", "answer": "2", "correct": True}
    ],
    "score": [{"prompt": "Q: 1+1?\n", "response": "1+1=2\n#### 2"}],
}
SHARED_FILES = {
    "gsm8k": "gsm8k/train.jsonl",
    "countdown": "countdown/train.jsonl",
    "mmlu_pro": "mmlu_pro/validation.jsonl",
    "processbench": "processbench/gsm8k.jsonl",
}


def seed_rows(fmt: str, k: int = 5) -> list[dict[str, Any]]:
    """Valid rows to start from: the first `k` of the shared data set where there is one."""
    path = DATA / SHARED_FILES.get(fmt, "-")
    if path.is_file():
        with path.open(encoding="utf-8") as f:
            return [json.loads(next(f)) for _ in range(k)]
    return SEED_ROWS[fmt]


# ---------------------------------------------------------------------------------------------------- mutations
WEIRD = [None, 0, -1, 1.5, float("1e308"), True, "", " ", "x" * 5000, [], [1, "a"], {}, {"a": 1}, "\u0000", "∑\ud7ff"]


def weird(rng: random.Random) -> Any:
    return copy.deepcopy(rng.choice(WEIRD))  # a fresh object: a shared one could end up inside itself


def mutate_rows(rows: list[dict[str, Any]], rng: random.Random) -> list[Any]:
    rows = [dict(r) for r in rows]
    for _ in range(rng.randint(1, 3)):
        row = rng.choice([r for r in rows if isinstance(r, dict)])
        action = rng.randrange(5)
        if action == 0 and row:
            del row[rng.choice(list(row))]
        elif action == 1 and row:
            row[rng.choice(list(row))] = weird(rng)
        elif action == 2:
            row[rng.choice(["id", "label", "steps", "answer", "extra"])] = weird(rng)
        elif action == 3:
            rows.append(weird(rng))  # a line that is not an object
        else:
            rows.insert(rng.randrange(len(rows) + 1), dict(row))  # a repeated row
    return rows


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        action = rng.randrange(4)
        at = rng.randrange(len(data) + 1)
        if action == 0 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif action == 1:
            data[at:at] = bytes(rng.choice([[0xFF, 0xFE], [0xC3], [0x00], [0x0A], [0x22], [0x7B]]))
        elif action == 2:
            del data[at:]
        elif data:
            lines = bytes(data).split(b"\n")
            rng.shuffle(lines)
            data = bytearray(b"\n".join(lines[: rng.randint(0, len(lines))]))
    return bytes(data)


def jsonl_bytes(rows: list[Any]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8", "surrogatepass")


def mutated_jsonl(fmt: str, rng: random.Random) -> bytes:
    rows = seed_rows(fmt)
    choice = rng.randrange(3)
    if choice == 0:
        return jsonl_bytes(mutate_rows(rows, rng))
    if choice == 1:
        return mutate_bytes(jsonl_bytes(rows), rng)
    return mutate_bytes(jsonl_bytes(mutate_rows(rows, rng)), rng)


# ---------------------------------------------------------------------------------------------------- readers
def task_reader(task: str) -> Callable[[Path], Any]:
    def read(path: Path) -> Any:
        fields = (
            {"question_field": "question", "trace_field": "trace", "answer_field": "answer"} if task == "jsonl" else {}
        )
        return get_task(TaskArgs(task=task, data=str(path), **fields)).examples("train")

    return read


def read_model_folder(path: Path) -> Any:
    from rairl.reward_model import RewardModel

    return RewardModel.from_pretrained(path)  # as rerank / localize / score / serve load a reward model


READERS: dict[str, Callable[[Path], Any]] = {
    **{t: task_reader(t) for t in ("gsm8k", "countdown", "mmlu_pro", "medreason", "jsonl")},
    "processbench": read_processbench,
    "samples": read_samples,
    "score": lambda p: read_traces(p, get_task(TaskArgs(task="arith"))),
    "yaml": lambda p: load_yaml(p, {"seed", "learning_rate", "max_steps", "output_dir"}),
    "model_folder": read_model_folder,
}


def make_input(fmt: str, rng: random.Random, work: Path, model_dir: Path | None) -> Path:
    """One mutated input of `fmt` under `work`."""
    if fmt == "yaml":
        path = work / "config.yaml"
        path.write_bytes(mutate_bytes(b"seed: 1\nlearning_rate: 0.001\ntrain_steps: 10\noutput_dir: runs/x\n", rng))
        return path
    if fmt == "model_folder":
        folder = work / "model"
        shutil.copytree(model_dir, folder)
        files = sorted(p for p in folder.iterdir() if p.is_file())
        victim = rng.choice(files)
        if rng.random() < 0.2:
            victim.unlink()
        else:
            victim.write_bytes(mutate_bytes(victim.read_bytes(), rng))
        return folder
    path = work / "train.jsonl"
    path.write_bytes(mutated_jsonl(fmt, rng))
    return path


def build_model_dir(root: Path) -> Path:
    from rairl.discriminator import Discriminator
    from rairl.models import ModelArgs, build_tiny
    from rairl.reward_model import RewardModel
    from rairl.reward_settings import RewardSettings

    model, tokenizer = build_tiny(
        ModelArgs(hidden_size=16, num_layers=1, num_heads=2, max_position_embeddings=32), seed=0
    )
    path = root / "disc"
    disc = Discriminator.from_causal_lm(model, likelihood=True, likelihood_from="backbone")
    RewardModel(disc, tokenizer, RewardSettings(score_form="f", clip_beta=5.0)).save_pretrained(path)
    return path


def fuzz(formats: list[str], n: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_dir = build_model_dir(root) if "model_folder" in formats else None
        for fmt in formats:
            counts = {"inputs": 0, "read": 0, "user_errors": 0, "escapes": 0, "unnamed": 0}
            examples: list[str] = []
            for i in range(n):
                work = root / f"{fmt}-{i}"
                work.mkdir()
                path = make_input(fmt, rng, work, model_dir)
                counts["inputs"] += 1
                try:
                    READERS[fmt](path)
                    counts["read"] += 1
                except USER_ERRORS as err:
                    counts["user_errors"] += 1
                    message = str(err.code if isinstance(err, SystemExit) else err)
                    if path.name not in message and path.parent.name not in message:
                        counts["unnamed"] += 1
                        examples.append(f"unnamed: {message[:200]}")
                except Exception:  # noqa: BLE001 - an escape is what this counts
                    counts["escapes"] += 1
                    examples.append(traceback.format_exc(limit=3)[-600:])
                shutil.rmtree(work)
            results[fmt] = {**counts, "examples": examples[:5]}
            print(fmt, counts, flush=True)
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="inputs per format")
    parser.add_argument("--formats", default=",".join(READERS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="benchmarks/results/fuzz_inputs.json")
    args = parser.parse_args(argv)
    results = fuzz(args.formats.split(","), args.n, args.seed)
    total = {k: sum(r[k] for r in results.values()) for k in ("inputs", "read", "user_errors", "escapes", "unnamed")}
    results["total"] = total
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    print("total", total)
    return results


if __name__ == "__main__":
    main()
