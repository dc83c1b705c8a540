"""Decoding speed on CPU against the bound that reading the weights sets (issue 28, item 1), SmolLM2-135M-Instruct:

    .venv/bin/python benchmarks/generation_speed.py --threads 2   # ~35 min on 2 cores alone (~4.5 min a variant)
    .venv/bin/python benchmarks/generation_speed.py --smoke        # proves it runs

`model.generate` of `TOKENS` new tokens (sampling at T = 1, every sequence forced to the full length) from arith
prompts in SmolLM2's chat template, at batch 1, 8 and 64, for the options transformers and torch offer on CPU:

    fp32            the weights as loaded (what `rairl sample`/`eval` and TRL's generation run today)
    fp32_lora       + an unmerged LoRA adapter (r 16, every linear layer): what TRL's GRPO loop decodes with
    lora_merged     the adapter merged into the weights (what vLLM-style weight syncing would decode with)
    static_cache    cache_implementation="static" (a preallocated KV cache instead of concatenation)
    static_compile  the static cache with torch.compile (its first call, the compilation, is not timed)
    bf16_autocast   fp32 weights under torch.autocast(bfloat16) (what TRL's --bf16 gives on CPU)
    bf16            the weights cast to bfloat16 (`--dtype bfloat16`)
    int8            torch.ao dynamic int8 quantisation of every linear layer

Each figure is the median of `repeats` timed calls after one warm-up: tokens/s and ms per decoding step. The bound:
one decoding step reads every weight once, so ms/step ≥ weight bytes / memory bandwidth (bandwidth measured here by
summing a 1 GiB float32 tensor). Exactness of each option against fp32: the share of greedy continuations (64
tokens, `n_exact` prompts) that are identical token for token, and the mean position of the first difference.
Writes `results/generation_speed.json`.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
import common  # noqa: E402

MODEL = "smollm2-135m"
VARIANTS = ("fp32", "fp32_lora", "lora_merged", "static_cache", "static_compile", "bf16_autocast", "bf16", "int8")
SIZE = {"batches": (1, 8, 64), "tokens": 64, "repeats": 5, "n_exact": 32, "bandwidth_gib": 1.0}
SMOKE = {"batches": (2,), "tokens": 4, "repeats": 1, "n_exact": 2, "bandwidth_gib": 0.05}


def bandwidth(gib: float, repeats: int) -> float:
    """GB/s of reading a float32 tensor of `gib` GiB once (`sum`), median of `repeats`."""
    x = torch.ones(int(gib * 2**30 / 4))
    x.sum()
    times = [common.timed(lambda: x.sum()) for _ in range(repeats)]
    return x.numel() * 4 / 1e9 / sorted(times)[len(times) // 2]


def build(variant: str):
    """(model, tokenizer, autocast context factory, generate kwargs, bytes of weights read per step) of a variant."""
    from peft import LoraConfig, get_peft_model

    from rairl.models import ModelArgs, load_policy

    model, tokenizer = load_policy(ModelArgs(model=MODEL, dtype="bfloat16" if variant == "bf16" else "float32"))
    if variant in ("fp32_lora", "lora_merged"):
        model = get_peft_model(model, LoraConfig(r=16, target_modules="all-linear"))
        if variant == "lora_merged":
            model = model.merge_and_unload()
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    if variant == "int8":  # every linear weight stored in one byte instead of four
        linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
        weight_bytes -= 3 * linear
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    if variant == "static_compile":
        model.forward = torch.compile(model.forward, dynamic=False)
    kwargs = {"cache_implementation": "static"} if variant.startswith("static") else {}
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if variant == "bf16_autocast" else None
    return model.eval(), tokenizer, autocast or contextlib.nullcontext, kwargs, weight_bytes


def prompts(tokenizer, n: int) -> dict[str, torch.Tensor]:
    from rairl.chat import render_prompts
    from rairl.tasks import TaskArgs, get_task

    task = get_task(TaskArgs(n_eval=max(n, 8)))
    texts = render_prompts(tokenizer, [task.prompt(ex) for ex in task.examples("validation")[:n]])
    tokenizer.padding_side = "left"
    return tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)


def generate(model, tokenizer, batch, autocast, kwargs, tokens: int, greedy: bool) -> torch.Tensor:
    options = {"do_sample": False} if greedy else {"do_sample": True, "temperature": 1.0, "top_k": 0}
    with torch.inference_mode(), autocast():
        return model.generate(
            **batch,
            max_new_tokens=tokens,
            min_new_tokens=tokens,
            pad_token_id=tokenizer.eos_token_id,
            **options,
            **kwargs,
        )


def measure(variant: str, size: dict[str, Any], reference: torch.Tensor | None) -> dict[str, Any]:
    model, tokenizer, autocast, kwargs, weight_bytes = build(variant)
    out: dict[str, Any] = {"weight_bytes": weight_bytes}
    for b in size["batches"]:
        batch = prompts(tokenizer, b)
        generate(model, tokenizer, batch, autocast, kwargs, size["tokens"], greedy=False)  # warm-up (compiles)
        times = [
            common.timed(lambda batch=batch: generate(model, tokenizer, batch, autocast, kwargs, size["tokens"], False))
            for _ in range(size["repeats"])
        ]
        s = common.summarize(times)
        out[f"batch{b}"] = {
            "call_s": s,
            "tokens_per_s": round(b * size["tokens"] / s["median"], 1),
            "ms_per_step": round(1000 * s["median"] / size["tokens"], 1),
        }
    batch = prompts(tokenizer, size["n_exact"])
    greedy = generate(model, tokenizer, batch, autocast, kwargs, size["tokens"], greedy=True)[:, -size["tokens"] :]
    if reference is not None:
        same = (greedy == reference).all(dim=1)
        first = [
            int((row != ref).nonzero()[0]) if not s else size["tokens"] for row, ref, s in zip(greedy, reference, same)
        ]
        out["exact_vs_fp32"] = {
            "identical": float(same.float().mean()),
            "first_difference_mean": sum(first) / len(first),
        }
    out["greedy"] = greedy
    return out


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--variants", default=",".join(VARIANTS))
    args = p.parse_args()
    threads = common.set_threads(args.threads)
    size = SMOKE if args.smoke else SIZE
    gbps = bandwidth(size["bandwidth_gib"], size["repeats"])
    results: dict[str, Any] = {}
    reference = None
    for variant in args.variants.split(","):
        start = time.perf_counter()
        r = measure(variant, size, reference)
        reference = r.pop("greedy") if reference is None else reference
        r.pop("greedy", None)
        r["bound_ms_per_step"] = round(1000 * r["weight_bytes"] / 1e9 / gbps, 1)
        results[variant] = r
        print(
            f"{variant:<15} "
            + "  ".join(
                f"b{b}: {r[f'batch{b}']['tokens_per_s']:7.1f} tok/s ({r[f'batch{b}']['ms_per_step']:6.1f} ms/step)"
                for b in size["batches"]
            )
            + f"  bound {r['bound_ms_per_step']} ms/step  {r.get('exact_vs_fp32', '')}"
            + f"  [{time.perf_counter() - start:.0f} s]",
            flush=True,
        )
    path = common.save(
        "generation_speed",
        {
            "threads": threads,
            "size": {**size, "batches": list(size["batches"])},
            "bandwidth_gb_s": round(gbps, 2),
            "variants": results,
        },
        args,
    )
    print(f"saved {path}")


if __name__ == "__main__":
    main()
