"""Peak memory of ℓ_t (`rairl.discriminator.token_logprobs`) on a SmolLM2-sized LM head (576 → 49,152), all response
positions through the head at once against `LOGIT_CHUNK` at a time; each setting in its own process (peak RSS).

    .venv/bin/python benchmarks/lm_head_memory.py          # seconds; writes results/lm_head_memory.json

Batch: 32 traces of 500 tokens, 300 of them response (9,600 positions): the shape of a SmolLM2 scoring batch on
GSM8K. The two settings must give the same ℓ_t (their sums are compared).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import environment, out_dir, parser  # noqa: E402

from rairl.io import write_json  # noqa: E402


def measure(chunk: int) -> dict[str, float]:
    import torch

    import rairl.discriminator as discriminator

    discriminator.LOGIT_CHUNK = chunk
    torch.manual_seed(0)
    head = torch.nn.Linear(576, 49152, bias=False)
    h = torch.randn(32, 500, 576)
    ids = torch.randint(0, 49152, (32, 500))
    mask = torch.zeros(32, 500, dtype=torch.bool)
    mask[:, 200:] = True
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with torch.no_grad():
        ell = discriminator.token_logprobs(head, h, ids, mask)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"chunk": chunk, "peak_rss_mib": round(peak), "inputs_rss_mib": round(before), "sum": float(ell.sum())}


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--worker", type=int, default=0, help="internal: measure one chunk size in this process")
    args = p.parse_args()
    if args.worker:
        print(json.dumps(measure(args.worker)))
        return
    rows = []
    for chunk in (10**9, 1024):  # everything at once (the previous code), then the default chunk
        out = subprocess.run(
            [sys.executable, __file__, "--worker", str(chunk)], capture_output=True, text=True, check=True
        ).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    assert abs(rows[0]["sum"] - rows[1]["sum"]) <= 1e-3 * abs(rows[0]["sum"]), rows
    result = {"environment": environment(), "positions": 32 * 300, "vocab": 49152, "settings": rows}
    write_json(out_dir(args) / "lm_head_memory.json", result)
    for r in rows:
        label = "all at once" if r["chunk"] >= 10**9 else f"chunks of {r['chunk']}"
        print(f"{label:<16} peak RSS {r['peak_rss_mib']} MiB (inputs {r['inputs_rss_mib']} MiB)")


if __name__ == "__main__":
    main()
