"""Where a figure was measured: the git commit, the library versions, the CPU, its cores and the torch threads.

Every result file records `environment()` (the demo's `results.json`, every file in `benchmarks/results/`), since
float results change with the CPU and the thread count (issue 38: the same recipe trained a base of 0.633 on one
CPU and 0.312 on another), and `rairl report` shows it.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

PACKAGES = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "tokenizers", "safetensors", "numpy",
            "scipy", "scikit-learn", "rairl")  # fmt: skip


def cpu_model() -> str:
    """The CPU's model name (`/proc/cpuinfo`), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_state(root: str | os.PathLike | None = None) -> dict[str, Any]:
    """`{"commit", "dirty"}` of the checkout holding `root` (this package's by default); None outside git."""
    cwd = Path(root) if root else Path(__file__).resolve().parent

    def git(*cmd: str) -> str:
        return subprocess.run(["git", *cmd], cwd=cwd, capture_output=True, text=True, timeout=10).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD") or None
        return {"commit": commit, "dirty": bool(git("status", "--porcelain")) if commit else None}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    versions = {}
    for name in names:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


def environment(threads: int | None = None) -> dict[str, Any]:
    """The machine and software of a result. `threads`: the torch threads the work ran at, when it is not this
    process's (the demo's jobs run in workers of their own)."""
    import psutil
    import torch

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "git": git_state(),
        "versions": package_versions(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "torch_threads": threads if threads is not None else torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_1m_5m_15m": [round(x, 2) for x in os.getloadavg()],
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
