"""A seeded mutator over every kind of input the commands take (issues: crash-safe runs; hostile input). Each
mutated input goes through the very code the command runs on it; the outcome must be a clean read or a *user
error*: an exception the CLI turns into one line (`ValueError`, `OSError`, `SafetensorError`, `FloatingPointError`,
or `SystemExit` for a config), an HTTP 4xx with a JSON detail from the server, whose message names the file (or the
option). Anything else (a `KeyError`, `TypeError`, `RecursionError`, a 5xx, a hang, ...) is counted as an escape.

    .venv/bin/python benchmarks/fuzz_inputs.py --n 1000        # 1,000 inputs per format (the full sweep)
    .venv/bin/python benchmarks/fuzz_inputs.py --n 30          # what the CI test runs (a few dozen)

File formats: each task's JSONL loader (gsm8k, countdown, mmlu_pro, medreason, jsonl), ProcessBench files, `rairl
sample` files (rerank), `rairl score` input, YAML configs, model folders (config.json and safetensors bytes
mutated, files deleted), a reward model's settings (`rairl_reward.json`: values of other types, NaN, Infinity,
1e308), the metrics and results files `rairl report` reads (eval, rerank, localize, search, demo), and run folders
resumed (`--resume_from_checkpoint` unset, auto, last or a folder, over checkpoints whole, cut or garbled, a finished
run, and what killed saves leave). Seeds are valid rows from `../shared/data` (or small built-in rows when it is
absent). Mutations: byte flips, inserted bytes (invalid UTF-8, deep nesting), truncation, dropped / duplicated /
shuffled lines, fields removed or retyped (null, numbers, NaN, lists, objects, empty, huge or lone-surrogate
strings). Targets that are not files (`fuzz_targets.py`): the reward server (`server`), every command's options
(`options`) and `rairl search` runs (`search`). Writes `--output`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from safetensors import SafetensorError

sys.path.insert(0, str(Path(__file__).parent))
from common import write_result  # noqa: E402
from fuzz_targets import (  # noqa: E402
    Escape,
    Target,
    mutate_bytes,
    mutate_value,
    options_target,
    search_target,
    served,
    server_target,
    to_json,
    weird,
)

from rairl.config import load_yaml  # noqa: E402
from rairl.evaluation.processbench import read_processbench  # noqa: E402
from rairl.inference.rerank import read_samples  # noqa: E402
from rairl.inference.scoring import read_traces  # noqa: E402
from rairl.tasks import TaskArgs, get_task  # noqa: E402

USER_ERRORS = (ValueError, OSError, SafetensorError, FloatingPointError, SystemExit)  # what `rairl.cli` shows in a line
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


def jsonl_bytes(rows: list[Any], rng: random.Random) -> bytes:
    return b"".join(to_json(r, rng) + b"\n" for r in rows)


def mutated_jsonl(fmt: str, rng: random.Random) -> bytes:
    rows = seed_rows(fmt)
    choice = rng.randrange(3)
    if choice == 0:
        return jsonl_bytes(mutate_rows(rows, rng), rng)
    if choice == 1:
        return mutate_bytes(jsonl_bytes(rows, rng), rng)
    return mutate_bytes(jsonl_bytes(mutate_rows(rows, rng), rng), rng)


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


def read_settings(path: Path) -> Any:
    from rairl.reward_settings import RewardSettings

    return RewardSettings.load(path.parent)


def read_report(path: Path) -> Any:
    from rairl.report.html import Config, render

    return render(Config(run_dir=str(path.parent), max_traces=1))


def read_run_dir(path: Path) -> Any:
    """Resolve the resume choice `path` names (its file `resume`) as a trainer does before training, and read the
    step of the checkpoint chosen."""
    from rairl.trainers.checkpoints import checkpoint_step, resolve_resume

    choice = path.read_text() or None  # "", auto, last, or a folder under the run ("." is the run itself)
    folder = str(path.parent / choice) if choice not in (None, "auto", "last") else choice
    found = resolve_resume(folder, path.parent)
    return checkpoint_step(found) if found else None


READERS: dict[str, Callable[[Path], Any]] = {
    **{t: task_reader(t) for t in ("gsm8k", "countdown", "mmlu_pro", "medreason", "jsonl")},
    "processbench": read_processbench,
    "samples": read_samples,
    "score": lambda p: read_traces(p, get_task(TaskArgs(task="arith"))),
    "yaml": lambda p: load_yaml(p, {"seed", "learning_rate", "max_steps", "output_dir"}),
    "model_folder": read_model_folder,
    "settings": read_settings,
    "report": read_report,
    "run_dir": read_run_dir,
}

SUMMARY = {"mean": 0.5, "ci95": [0.25, 0.75], "n": 8}
REPORTS = {  # the shapes rairl's commands write, one of each kind `rairl report` reads
    "metrics.json": [
        {"splits": {"test": {"greedy": SUMMARY, "pass@1": SUMMARY, "pass@4": SUMMARY}}, "config": {"n": 4}},
        {"pass@k": {"pass@1": SUMMARY, "pass@4": SUMMARY}, "select": {"reward/mean": SUMMARY, "majority": SUMMARY}},
        {"reward": {"threshold": 0.0, "acc_error": SUMMARY, "f1": 0.5, "by_perturbation": {"swap": SUMMARY}},
         "likelihood": {"threshold": -2.3, "acc_error": SUMMARY}, "n_traces": 8},
        {"split": "test", "results": {"beam/reward/N=4": {"accuracy": SUMMARY, "tokens_per_question": 12.5}}},
    ],
    "results.json": [{"claims": [{"claim": "dense beats outcome", "holds": True, "diff": SUMMARY}],
                      "training": {"airl": {"test": {"greedy": SUMMARY}}}, "seeds": [0, 1]}],
}  # fmt: skip
SETTINGS = {"granularity": "dense", "interval": 8, "clip_beta": 5.0, "score_form": "f", "step_reduce": None,
            "aggregate_discount": 0.9, "max_length": 32}  # fmt: skip


def make_run_dir(rng: random.Random, folder: Path) -> Path:
    """A run folder as runs and killed runs leave it: checkpoints (whole, cut, garbled), a finished run's summary,
    staging folders; its file `resume` names the choice to resolve."""
    from rairl.trainers.checkpoints import mark_complete

    folder.mkdir()
    steps = rng.sample([2, 4, 6, 8], rng.randint(0, 3))
    for step in steps:
        checkpoint = folder / f"checkpoint-{step}"
        checkpoint.mkdir()
        state = to_json(mutate_value({"global_step": step}, rng) if rng.random() < 0.3 else {"global_step": step}, rng)
        (checkpoint / "trainer_state.json").write_bytes(mutate_bytes(state, rng) if rng.random() < 0.2 else state)
        (checkpoint / "model.safetensors").write_bytes(b"x" * 10)
        if rng.random() < 0.7:
            mark_complete(checkpoint)
        if rng.random() < 0.2:
            victim = rng.choice(sorted(checkpoint.iterdir()))
            victim.write_bytes(mutate_bytes(victim.read_bytes(), rng))
    for leftover in (".final", "..final.x1y2.tmp", ".staging-checkpoint-10", "train_summary.json"):
        if rng.random() < 0.25:
            (folder / leftover).mkdir() if leftover.startswith(".") else (folder / leftover).write_text("{}")
    choices = ["", "auto", "last", *(f"checkpoint-{s}" for s in steps), "checkpoint-99", "."]
    path = folder / "resume"
    path.write_text(rng.choice(choices))
    return path


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
    if fmt == "run_dir":
        return make_run_dir(rng, work / "run")
    if fmt in ("settings", "report"):
        name = rng.choice(list(REPORTS)) if fmt == "report" else "rairl_reward.json"
        seed = rng.choice(REPORTS[name]) if fmt == "report" else SETTINGS
        data = to_json(mutate_value(seed, rng) if rng.random() < 0.8 else seed, rng)
        path = work / "run" / name
        path.parent.mkdir()
        path.write_bytes(mutate_bytes(data, rng) if rng.random() < 0.3 else data)
        return path
    path = work / "train.jsonl"
    path.write_bytes(mutated_jsonl(fmt, rng))
    return path


def file_target(fmt: str, model_dir: Path | None) -> Target:
    def named(path: Path, message: str) -> bool:
        return path.name in message or path.parent.name in message

    return Target(lambda rng, work: make_input(fmt, rng, work, model_dir), READERS[fmt], named)


def build_models(root: Path) -> tuple[Path, Path]:
    """A tiny policy (`root/policy`) and a reward model on it (`root/disc`, 32 positions)."""
    from rairl.discriminator import Discriminator
    from rairl.models import ModelArgs, build_tiny
    from rairl.reward_model import RewardModel
    from rairl.reward_settings import RewardSettings

    model, tokenizer = build_tiny(
        ModelArgs(hidden_size=16, num_layers=1, num_heads=2, max_position_embeddings=32), seed=0
    )
    model.save_pretrained(root / "policy")
    tokenizer.save_pretrained(root / "policy")
    disc = Discriminator.from_causal_lm(model, likelihood=True, likelihood_from="backbone")
    RewardModel(disc, tokenizer, RewardSettings(score_form="f", clip_beta=5.0)).save_pretrained(root / "disc")
    return root / "policy", root / "disc"


TARGETS = (*READERS, "server", "options", "search")


@contextlib.contextmanager
def targets(formats: list[str], root: Path) -> Iterator[dict[str, Target]]:
    """The `Target` of each format (the server runs for the block when asked for)."""
    policy_dir, model_dir = build_models(root)
    found = {fmt: file_target(fmt, model_dir) for fmt in formats if fmt in READERS}
    if "options" in formats:
        found["options"] = options_target()
    if "search" in formats:
        found["search"] = search_target(policy_dir, model_dir)
    with served(model_dir) if "server" in formats else contextlib.nullcontext() as post:
        if post is not None:
            found["server"] = server_target(post)
        yield {fmt: found[fmt] for fmt in formats}


def fuzz(formats: list[str], n: int, seed: int) -> dict[str, Any]:
    if unknown := sorted(set(formats) - set(TARGETS)):
        raise SystemExit(f"unknown formats {unknown}; known: {', '.join(TARGETS)}")
    rng = random.Random(seed)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, targets(formats, Path(tmp)) as found:
        root = Path(tmp)
        for fmt, target in found.items():
            counts = {"inputs": 0, "read": 0, "user_errors": 0, "escapes": 0, "unnamed": 0}
            examples: list[str] = []
            start = time.perf_counter()
            for i in range(n):
                work = root / f"{fmt}-{i}"
                work.mkdir()
                case = target.make(rng, work)
                counts["inputs"] += 1
                try:
                    target.feed(case)
                    counts["read"] += 1
                except Escape as err:
                    counts["escapes"] += 1
                    examples.append(f"escape: {err}"[:600])
                except USER_ERRORS as err:  # Refused included (a ValueError)
                    counts["user_errors"] += 1
                    message = str(err.code if isinstance(err, SystemExit) else err)
                    if not target.names(case, message):
                        counts["unnamed"] += 1
                        examples.append(f"unnamed: {message[:200]} <- {str(case)[:200]}")
                except Exception:  # noqa: BLE001 - an escape is what this counts
                    counts["escapes"] += 1
                    examples.append(traceback.format_exc(limit=3)[-600:] + f" <- {str(case)[:200]}")
                shutil.rmtree(work, ignore_errors=True)
            results[fmt] = {**counts, "seconds": round(time.perf_counter() - start, 1), "examples": examples[:5]}
            print(fmt, counts, flush=True)
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="inputs per format")
    parser.add_argument("--formats", default=",".join(TARGETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="benchmarks/results/fuzz_inputs.json")
    args = parser.parse_args(argv)
    results = fuzz(args.formats.split(","), args.n, args.seed)
    total = {k: sum(r[k] for r in results.values()) for k in ("inputs", "read", "user_errors", "escapes", "unnamed")}
    results["total"] = total
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    write_result(Path(args.output), results)
    print("total", total)
    return results


if __name__ == "__main__":
    main()
