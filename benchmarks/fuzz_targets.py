"""What `fuzz_inputs.py` mutates and feeds beyond its files: the shared mutations, and three targets that are not
files. Each target is a `Target`: `make` draws one mutated input, `feed` passes it through the code under test (it
returns, or raises), `names` says whether a refusal's message points at what was wrong.

    server    `rairl serve` in a subprocess (a tiny reward model, an API key, small limits): each mutated /score or
              /get_reward body is sent together with a good request. An answer of 2xx or 4xx (with a JSON detail)
              is fine; a 5xx, a dropped connection, no answer within 30 s, or the good request failing beside the
              bad one is an escape.
    options   one to three numeric (or device) options of any command set to edge values (0, -1, 2**31, 1e308,
              nan, inf, 1e-300, "abc", ...), parsed as `rairl` parses them and the task built; a refusal must
              name an option or value it was given.
    search    `rairl search` run end to end on the tiny policy and reward model with one or two of its options at
              edge values (refusals are fine; a traceback, or a search that runs away, is not).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib
import io
import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# ---------------------------------------------------------------------------------------------------- mutations
WEIRD = [None, 0, -1, 1.5, float("1e308"), float("nan"), float("inf"), True, "", " ", "x" * 5000, [], [1, "a"], {},
         {"a": 1}, "\u0000", "∑\ud7ff", "\ud800", "a\udc00b"]  # fmt: skip


def weird(rng: random.Random) -> Any:
    return copy.deepcopy(rng.choice(WEIRD))  # a fresh object: a shared one could end up inside itself


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        action = rng.randrange(5)
        at = rng.randrange(len(data) + 1)
        if action == 0 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif action == 1:
            data[at:at] = bytes(rng.choice([[0xFF, 0xFE], [0xC3], [0x00], [0x0A], [0x22], [0x7B]]))
        elif action == 2:
            del data[at:]
        elif action == 3:
            data[at:at] = rng.choice([b"[", b'{"a":']) * rng.choice([50, 150, 5000])  # deep nesting
        elif data:
            lines = bytes(data).split(b"\n")
            rng.shuffle(lines)
            data = bytearray(b"\n".join(lines[: rng.randint(0, len(lines))]))
    return bytes(data)


def mutate_value(value: Any, rng: random.Random) -> Any:
    """A copy of the JSON `value` with one to three changes at random places: a field removed, a value retyped, an
    element repeated, or a value wrapped 150 lists deep."""
    value = copy.deepcopy(value)
    for _ in range(rng.randint(1, 3)):
        places, stack = [], [value]
        while stack:
            item = stack.pop()
            keys = list(item) if isinstance(item, dict) else range(len(item)) if isinstance(item, list) else []
            places += [(item, k) for k in keys]
            stack += [item[k] for k in keys]
        if not places:
            return weird(rng)
        parent, key = rng.choice(places)
        action = rng.randrange(4)
        if action == 0:
            del parent[key]
        elif action == 1:
            parent[key] = weird(rng)
        elif action == 2 and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        else:
            for _ in range(150):
                parent[key] = [parent[key]]
    return value


def to_json(value: Any, rng: random.Random) -> bytes:
    """JSON bytes, lone surrogates escaped (`"\\ud800"`, valid JSON) or written raw (not UTF-8) at random."""
    return json.dumps(value, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")


@dataclass
class Target:
    make: Callable[[random.Random, Path], Any]  # one mutated input (files go under the folder given)
    feed: Callable[[Any], Any]  # through the code under test: returns, or raises
    names: Callable[[Any, str], bool]  # does a refusal's message point at the input's fault


class Refused(ValueError):
    """A clean refusal that is not an exception in the code under test (an HTTP 4xx, argparse's usage error)."""


class Escape(RuntimeError):
    """What a user must never see: a 5xx, a hang, a dropped connection, a good request failed beside a bad one."""


# ---------------------------------------------------------------------------------------------------- server
KEY = "fuzz-key"
GOOD = {"prompts": ["Q: 1+2?\n"], "responses": ["1+2=3\n#### 3"]}
BODIES = {
    "/score": {"prompts": ["Q: 1+2?\n", "Q: 3*4?\n"], "responses": ["1+2=3\n#### 3", "3*4=12\n"], "partial": False},
    "/get_reward": {"query": ["Q: 1+2?\n1+2=3\n#### 3"], "prompts": ["Q: 1+2?\n"], "labels": ["3"]},
}


@contextlib.contextmanager
def served(model_dir: Path) -> Iterator[Callable[[str, bytes], Any]]:
    """`rairl serve` on a free loopback port for the block; yields `post(path, body) -> httpx.Response`."""
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # small limits, and 20 ms of batching: a fuzzed request and the good one sent with it share a batch
    limits = [
        "--max_traces",
        "8",
        "--max_tokens_per_trace",
        "300",
        "--max_request_bytes",
        "200000",
        "--max_wait_ms",
        "20",
    ]
    cmd = [sys.executable, "-m", "rairl.cli", "serve", "--reward_model", str(model_dir), "--port", str(port), *limits]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAIRL_API_KEY": KEY}
    log = (model_dir.parent / "serve.log").open("w")  # read on failure (a pipe nobody reads would fill and stall it)
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    client = httpx.Client(timeout=30, headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    try:
        for _ in range(600):
            if proc.poll() is not None:
                raise RuntimeError(f"rairl serve exited: {Path(log.name).read_text()[-2000:]}")
            with contextlib.suppress(httpx.TransportError):
                if client.get(url + "/health").status_code == 200:
                    break
            time.sleep(0.1)
        yield lambda path, body: client.post(url + path, content=body)
        if client.get(url + "/health").status_code != 200:
            raise Escape("the server stopped answering /health")
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def server_target(post: Callable[[str, bytes], Any]) -> Target:
    import httpx

    def make(rng: random.Random, work: Path) -> tuple[str, bytes]:
        path = rng.choice(list(BODIES))
        body = BODIES[path] if rng.random() < 0.1 else mutate_value(BODIES[path], rng)
        data = to_json(body, rng)
        return path, mutate_bytes(data, rng) if rng.random() < 0.3 else data

    def feed(request: tuple[str, bytes]) -> None:
        with ThreadPoolExecutor(2) as pool:
            fuzzed, good = pool.submit(post, *request), pool.submit(post, "/score", json.dumps(GOOD).encode())
            try:
                answer, beside = fuzzed.result(), good.result()
            except httpx.TransportError as err:  # a timeout (a hang) or a dropped connection
                raise Escape(f"{type(err).__name__}: {err}") from None
        if beside.status_code != 200:
            raise Escape(f"a good request sent beside this one got {beside.status_code}: {beside.text[:200]}")
        if answer.status_code >= 500:
            raise Escape(f"HTTP {answer.status_code}: {answer.text[:200]}")
        if answer.status_code >= 400:
            raise Refused(answer.text)

    def names(request: tuple[str, bytes], message: str) -> bool:  # a 4xx explains itself in a JSON detail
        with contextlib.suppress(ValueError):
            return bool(json.loads(message).get("detail"))
        return False

    return Target(make, feed, names)


# ---------------------------------------------------------------------------------------------------- options
EDGES = ["0", "-1", "1", "3", "64", "1000", "2147483647", "2147483648", "1000000000", "99999999999999999999", "1e308",
         "nan", "inf", "-inf", "1e-300", "0.01", "2.5", "-0", "", "abc"]  # fmt: skip
DEVICES = ["tpu9", "cuda:7", "cpu:0", "", "meta", "cuda"]
REQUIRED = {  # placeholders for the options a command cannot parse without (nothing is read at parse time)
    "sft": ["--output_dir", "o"], "grpo": ["--output_dir", "o"], "airl": ["--output_dir", "o"],
    "sample": ["--model", "m", "--output", "o.jsonl"], "score": ["--reward_model", "d", "--input", "i.jsonl"],
    "rerank": ["--reward_model", "d", "--samples", "s.jsonl"], "localize": ["--reward_model", "d"],
    "search": ["--reward_model", "d", "--policy", "p"], "eval": ["--model", "m"], "report": ["--run_dir", "r"],
    "convert": ["--model", "smollm2-135m", "--output_dir", "o"], "serve": ["--reward_model", "d"],
}  # fmt: skip


def numeric_options(config_cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(config_cls) if any(t in str(f.type) for t in ("int", "float"))]


def parsed(config_cls: type, argv: list[str]) -> Any:
    """`rairl.config.parse_config`; argparse's own refusal (usage and one error line) becomes `Refused`."""
    from rairl.config import parse_config

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return parse_config(config_cls, argv)
    except SystemExit as exit_:
        if exit_.code in (0, None) or not isinstance(exit_.code, int):
            raise
        raise Refused(err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else "") from None


def edge_flags(rng: random.Random, names: list[str], k: int) -> tuple[list[str], list[str]]:
    """`k` of `names` (device among them as any other) with edge values: (argv, the names and long values set)."""
    chosen = rng.sample(names, min(k, len(names)))
    values = [rng.choice(DEVICES if name == "device" else EDGES) for name in chosen]
    argv = [x for name, value in zip(chosen, values) for x in (f"--{name}", value)]
    return argv, chosen + [v for v in values if len(v) >= 3]  # a message may point at the value, not the name


def options_target() -> Target:
    from rairl.cli import COMMANDS
    from rairl.tasks import TaskArgs, get_task

    configs = {name: importlib.import_module(COMMANDS[name][0]).Config for name in REQUIRED}

    def make(rng: random.Random, work: Path) -> tuple[str, list[str], list[str]]:
        command = rng.choice(list(configs))
        names = numeric_options(configs[command]) + (["device"] if command in ("score", "serve", "search") else [])
        argv, chosen = edge_flags(rng, names, rng.randint(1, 3))
        return command, [*REQUIRED[command], *argv], chosen

    def feed(case: tuple[str, list[str], list[str]]) -> None:
        command, argv, _ = case
        config = parsed(configs[command], argv)
        if isinstance(config, TaskArgs):
            get_task(config)  # the task checks its own numbers when built

    return Target(make, feed, lambda case, message: any(name in message for name in case[2]))


# ---------------------------------------------------------------------------------------------------- search
SEARCH_OPTIONS = ["n", "m", "limit", "temperature", "max_steps", "max_step_tokens", "batch_size", "seed", "device"]


def search_target(policy_dir: Path, model_dir: Path) -> Target:
    from rairl.commands import search

    base = ["--policy", str(policy_dir), "--reward_model", str(model_dir), "--n", "2", "--m", "2", "--limit", "2",
            "--max_steps", "2", "--max_step_tokens", "4", "--n_train", "8", "--n_eval", "3"]  # fmt: skip

    def make(rng: random.Random, work: Path) -> tuple[list[str], list[str]]:
        argv, chosen = edge_flags(rng, SEARCH_OPTIONS, rng.randint(1, 2))
        method = [
            "--methods",
            rng.choice(["best_of_n", "beam", "dvts"]),
            "--scorers",
            rng.choice(["reward", "likelihood"]),
        ]
        return [*base, *method, *argv, "--output_dir", str(work / "out")], chosen

    def feed(case: tuple[list[str], list[str]]) -> None:
        config = parsed(search.Config, case[0])
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):  # tables, bars
            search.run(config)

    return Target(make, feed, lambda case, message: any(name in message for name in case[1]))
