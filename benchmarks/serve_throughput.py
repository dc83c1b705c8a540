"""`rairl serve` throughput and latency against in-process scoring of the same traces (issue: serve the reward).

    .venv/bin/python benchmarks/serve_throughput.py                       # the demo-sized discriminator
    .venv/bin/python benchmarks/serve_throughput.py --smoke

A likelihood-aware discriminator of the demo's size (128 × 4, reference likelihood) is saved once; the server runs
in a subprocess on a loopback port (one scoring worker, dynamic batching). The traces are arith expert traces and a
perturbed copy of each, shuffled. In-process: `RewardModel.score` over all traces in requests of `--per_request`
traces, one after the other (what one client of the model would do). Served: C concurrent clients (threads,
C ∈ {1, 4, 16}) send the same requests to `/get_reward` until all are answered; traces/s over the wall time, and
p50 / p99 request latency. Each figure: the median of `--repeats` runs (and its spread). Target: served
throughput at 16 clients >= 0.8x in-process. Writes `results/serve_throughput.json`.
"""

from __future__ import annotations

import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from common import parser, ratio, save, set_threads, summarize, table, timed

from rairl.discriminator import Discriminator
from rairl.models import ModelArgs, build_tiny
from rairl.reward_model import RewardModel
from rairl.reward_settings import RewardSettings
from rairl.rewards.perturb import perturb
from rairl.tasks import TaskArgs, get_task


def traces(n: int) -> tuple[list[str], list[str]]:
    task = get_task(TaskArgs(task="arith", n_eval=max(8, n // 2)))
    rng = random.Random(0)
    pairs = []
    for ex in task.examples("test")[: n // 2]:
        pairs += [(task.prompt(ex), ex.expert), (task.prompt(ex), perturb(ex.expert, rng).response)]
    rng.shuffle(pairs)
    return [p for p, _ in pairs], [r for _, r in pairs]


def start_server(disc_dir: Path, threads: int) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rairl.cli", "serve", "--reward_model", str(disc_dir), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def served(url: str, requests: list[tuple[list[str], list[str]]], clients: int) -> dict[str, float]:
    latencies = []

    def one(req):
        prompts, responses = req
        body = {"query": [p + r for p, r in zip(prompts, responses)], "prompts": prompts}
        start = time.perf_counter()
        answer = client.post(url + "/get_reward", json=body)
        answer.raise_for_status()
        latencies.append(time.perf_counter() - start)

    with httpx.Client(timeout=600, limits=httpx.Limits(max_connections=clients)) as client:
        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(one, requests))
        wall = time.perf_counter() - start
    n = sum(len(p) for p, _ in requests)
    latencies.sort()
    return {
        "traces_per_s": n / wall,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
    }


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--n_traces", type=int, default=512)
    p.add_argument("--per_request", type=int, default=8)
    p.add_argument("--clients", default="1,4,16")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    if args.smoke:
        args.n_traces, args.repeats, args.clients = 32, 1, "1,4"
    threads = set_threads(args.threads)
    size = dict(hidden_size=32, num_layers=1, num_heads=2) if args.smoke else {}
    prompts, responses = traces(args.n_traces)
    requests = [
        (prompts[i : i + args.per_request], responses[i : i + args.per_request])
        for i in range(0, len(prompts), args.per_request)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        disc_dir = Path(tmp) / "disc"
        model, tokenizer = build_tiny(ModelArgs(**size), seed=0)
        RewardModel(
            Discriminator.from_causal_lm(model, True, likelihood_from="reference"),
            tokenizer,
            RewardSettings(score_form="f"),
        ).save_pretrained(disc_dir)
        rm = RewardModel.from_pretrained(disc_dir)
        rm.score(*requests[0])  # warm-up
        local = [len(prompts) / timed(lambda: [rm.score(p, r) for p, r in requests]) for _ in range(args.repeats)]
        proc, url = start_server(disc_dir, threads)
        try:
            served(url, requests[:2], 1)  # warm-up
            figures = {}
            for c in [int(x) for x in args.clients.split(",")]:
                runs = [served(url, requests, c) for _ in range(args.repeats)]
                figures[c] = {k: summarize([r[k] for r in runs]) for k in runs[0]}
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    in_process = summarize(local)
    rows = [["in-process", f"{in_process['median']:.1f}", "1.00", "-", "-"]]
    for c, f in figures.items():
        rows.append(
            [
                f"{c} clients",
                f"{f['traces_per_s']['median']:.1f}",
                f"{ratio(f['traces_per_s'], in_process):.2f}",
                f"{f['p50_ms']['median']:.0f}",
                f"{f['p99_ms']['median']:.0f}",
            ]
        )
    print(table(rows, ["", "traces/s", "× in-process", "p50 ms", "p99 ms"]))
    path = save(
        "serve_throughput",
        {
            "n_traces": len(prompts),
            "per_request": args.per_request,
            "in_process_traces_per_s": in_process,
            "served": {
                str(c): {**f, "ratio_to_in_process": ratio(f["traces_per_s"], in_process)} for c, f in figures.items()
            },
        },
        args,
    )
    print(f"saved {path}")


if __name__ == "__main__":
    main()
