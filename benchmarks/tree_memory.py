"""Wall time and peak memory of a whole process tree (a command and every worker it starts), e.g. `rairl demo`:

    .venv/bin/python benchmarks/tree_memory.py runs/demo_memory.json .venv/bin/rairl demo --output_dir runs/demo

Every second the RSS and the PSS of each process in the tree are summed; the peaks of both sums and the wall time are
written as JSON. PSS divides a page shared by k processes by k, so it is the honest total when workers fork from a
server that holds the imported libraries (`rairl.jobs` with `preload`); the RSS sum counts such pages once per
process. `memory.py` measures one process's own peak (`ru_maxrss`) instead.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).parent))
from common import write_result  # noqa: E402


def tree_sums(root: psutil.Process) -> tuple[int, int]:
    """(Σ RSS, Σ PSS) in bytes over `root` and its descendants; processes gone meanwhile are skipped."""
    rss = pss = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            rss += proc.memory_info().rss
            pss += proc.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return rss, pss


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit("usage: tree_memory.py OUTPUT.json COMMAND [ARGS...]")
    out, command = sys.argv[1], sys.argv[2:]
    start = time.perf_counter()
    child = subprocess.Popen(command)
    root, peak_rss, peak_pss = psutil.Process(child.pid), 0, 0
    while child.poll() is None:
        try:
            rss, pss = tree_sums(root)
        except psutil.NoSuchProcess:
            break
        peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
        time.sleep(1)
    result = {
        "cmd": command,
        "rc": child.wait(),
        "wall_s": round(time.perf_counter() - start, 1),
        "peak_tree_rss_gb": round(peak_rss / 1e9, 3),
        "peak_tree_pss_gb": round(peak_pss / 1e9, 3),
    }
    write_result(out, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
