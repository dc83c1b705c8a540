"""Independent pieces of work on a pool of single-thread worker processes, in dependency order.

A small model runs a training step or a generation call on one core nearly as fast as on two (its matrices are too small
to split well), so W single-thread processes finish W independent runs in about the time of one: the demo trains its
seeds' policies side by side this way. Each job runs in a fresh process (no state carried from one job to the next: a
new interpreter, or with `preload` on Linux a fork of a server process that imported those modules once, so a job does
not pay ~7 s of imports again), with one torch thread unless it asks for more, its console output in its own log file,
and no progress bars of its own; the caller sees one bar over the jobs, with rate and ETA. A job's result is what its
function returns (picklable); a failing job stops the run with its name and log file.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

logger = logging.getLogger(__name__)


@dataclass
class Job:
    """`fn(**kwargs)` once every job named in `after` has finished (it reads what they wrote); console output to
    `log`. `fn` may be named as "module:function": it is then imported in the worker alone, so the process that
    schedules the jobs never loads what they run."""

    name: str
    fn: Callable[..., Any] | str
    kwargs: dict[str, Any] = field(default_factory=dict)
    after: tuple[str, ...] = ()
    log: Path | None = None
    threads: int = 1  # torch threads in its worker: more only for a job that runs while the other workers idle


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _run(fn: Callable[..., Any] | str, kwargs: dict[str, Any], log: str | None, threads: int) -> tuple[Any, float]:
    """In the worker: `threads` torch threads, no progress bars, stdout/stderr and logging into `log`; returns the
    result and the seconds `fn` took."""
    import importlib

    import torch

    if isinstance(fn, str):
        module, _, name = fn.partition(":")
        fn = getattr(importlib.import_module(module), name)
    torch.set_num_threads(threads)
    os.environ["TQDM_DISABLE"] = "1"
    start = time.perf_counter()
    if log is None:
        return fn(**kwargs), time.perf_counter() - start
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        handler = logging.StreamHandler(f)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s", "%H:%M:%S"))
        root = logging.getLogger()
        root.handlers, root.level = [handler], logging.INFO
        return fn(**kwargs), time.perf_counter() - start


def worker_context(preload: Sequence[str]) -> multiprocessing.context.BaseContext:
    """Fork server processes with `preload` imported (where the platform has them), else fresh interpreters."""
    if preload and "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(list(preload))
        return context
    return multiprocessing.get_context("spawn")  # a fresh interpreter: no torch state shared with the parent


def run_jobs(
    jobs: list[Job], workers: int, desc: str = "jobs", preload: Sequence[str] = ()
) -> tuple[dict[str, Any], dict[str, float]]:
    """Run `jobs` on `workers` processes (each job in a fresh one, forked from a server that imported `preload`
    when given), every job after those it names in `after`; a free worker takes the first ready job in list order
    (so the list is the priority order). Returns `{name: result}` and `{name: seconds}` (the job's own time,
    without its process's start-up)."""
    names = [j.name for j in jobs]
    if len(set(names)) != len(names) or (missing := {a for j in jobs for a in j.after} - set(names)):
        raise ValueError(f"job names must be unique and `after` must name jobs: {names}, missing {missing or {}}")
    results: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    waiting, running = list(jobs), {}
    context = worker_context(preload)
    with (
        ProcessPoolExecutor(max_workers=max(1, workers), mp_context=context, max_tasks_per_child=1) as pool,
        tqdm(total=len(jobs), desc=desc, unit="job", file=sys.stderr) as bar,
    ):
        while waiting or running:
            ready = [j for j in waiting if all(a in results for a in j.after)]
            for job in ready[: max(1, workers) - len(running)]:  # the first ready in list order: its priority
                waiting.remove(job)
                future: Future = pool.submit(_run, job.fn, job.kwargs, str(job.log) if job.log else None, job.threads)
                running[future] = job
            if not running:
                raise ValueError(f"jobs wait on each other in a cycle: {[j.name for j in waiting]}")
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                job = running.pop(future)
                try:
                    results[job.name], seconds[job.name] = future.result()
                except Exception as err:  # the same kind of error, naming the job and its log
                    message = f"job {job.name}: {err}" + (f" (its log: {job.log})" if job.log else "")
                    try:
                        again = type(err)(message)
                    except Exception:
                        again = RuntimeError(message)
                    raise again from err
                bar.set_postfix_str(job.name)
                bar.update()
    return results, seconds
