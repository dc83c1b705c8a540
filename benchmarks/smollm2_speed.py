"""Speed on a real pretrained LM (SmolLM2-135M-Instruct, fp32, CPU), all in one run on one machine state:

    .venv/bin/python benchmarks/smollm2_speed.py          # ~10 min on 2 cores
    .venv/bin/python benchmarks/smollm2_speed.py --smoke  # proves it runs

1. `peak`: this machine's fp32 matmul throughput, a plain `torch.matmul` loop (n × n, 2n³ FLOPs each).
2. `sft_step`: one full fine-tuning step (forward, backward, AdamW) on 8 sequences of 256 tokens; model FLOPs
   = 3 × forward (2 per weight of every matmul incl. the LM head, plus attention over T), as a fraction of the
   peak (MFU).
3. `scoring`: `RewardModel.score` (tokenise, sort, forward, all three views) against the bare discriminator
   forward on the very same length-sorted mini-batches, on GSM8K train expert traces (prompt rendered with the chat
   template); the discriminator is SmolLM2 with the default likelihood from a frozen reference copy, so one trace
   costs two decoder forwards (and the LM head on its response tokens): MFU of the bare forward.
4. `step`: `benchmarks/step_time.py`'s steps on SmolLM2 with LoRA (r 16) on GSM8K train prompts, G = 4, samples
   ending at EOS (at most 256 tokens: realistic lengths, not forced): stock `trl.GRPOTrainer` (`grpo`), R-AIRL with
   a discriminator of its own and its reference copy (`airl_separate`: before issue 21) and R-AIRL on one shared
   base (`airl_shared`: the default with LoRA on both sides). Each variant runs in a child process, so its peak RSS
   (the kernel's `ru_maxrss`) is its own. `step_ratio_airl_over_grpo` = airl_shared / grpo (medians).
Each figure is the median of ≥ 5 measured repeats after one warm-up. Writes `results/smollm2_speed.json`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
import common  # noqa: E402

MODEL = "smollm2-135m"
SIZE = {
    "matmul": 1024,
    "sft_batch": 8,
    "sft_length": 256,
    "traces": 16,
    "batch": 8,
    "repeats": 5,
    "completion_length": 256,
    "lora_r": 16,
    "num_generations": 4,
    "prompts_per_step": 2,
}
SMOKE = {
    "matmul": 128,
    "sft_batch": 1,
    "sft_length": 16,
    "traces": 2,
    "batch": 2,
    "repeats": 1,
    "completion_length": 4,
    "lora_r": 2,
    "num_generations": 2,
    "prompts_per_step": 1,
}


def repeat(fn, repeats: int) -> list[float]:
    fn()  # warm-up: allocator, kernels
    return [common.timed(fn) for _ in range(repeats)]


def matmul_peak(n: int, repeats: int) -> dict[str, Any]:
    a, b = torch.randn(n, n), torch.randn(n, n)
    seconds = repeat(lambda: [torch.matmul(a, b) for _ in range(10)], repeats)
    return {"n": n, "gflops": common.summarize([10 * 2 * n**3 / s / 1e9 for s in seconds], digits=1)}


def decoder_flops(cfg, length: int) -> float:
    """Forward FLOPs per token of the decoder layers: 2 per weight of the layers' matmuls, plus the attention
    scores and values over `length` positions (QKᵀ and AV, 2 FLOPs per multiply-add)."""
    h, kv = cfg.hidden_size, cfg.num_key_value_heads * (cfg.hidden_size // cfg.num_attention_heads)
    per_layer = h * h * 2 + h * kv * 2 + 3 * h * cfg.intermediate_size  # q, o; k, v; gate, up, down
    return cfg.num_hidden_layers * (2 * per_layer + 2 * 2 * h * length)


def head_flops(cfg) -> float:
    return 2 * cfg.vocab_size * cfg.hidden_size


def sft_step(model, size: dict[str, int], peak: float) -> dict[str, Any]:
    torch.manual_seed(0)
    ids = torch.randint(100, model.config.vocab_size, (size["sft_batch"], size["sft_length"]))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    model.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()

    seconds = repeat(step, size["repeats"])
    tokens = ids.numel()
    tok_s = common.summarize([tokens / s for s in seconds], digits=1)
    flops = 3 * (decoder_flops(model.config, size["sft_length"]) + head_flops(model.config))  # forward + 2× backward
    return {"tokens_per_step": tokens, "tokens_per_s": tok_s, "mfu": tok_s["median"] * flops / 1e9 / peak}


def scoring(size: dict[str, int], peak: float) -> dict[str, Any]:
    from rairl.discriminator import Discriminator
    from rairl.models import load_tokenizer
    from rairl.models.gguf import resolve_model
    from rairl.reward_model import RewardModel
    from rairl.tasks import TaskArgs, get_task
    from rairl.trace_scorer import sorted_minibatches

    path = resolve_model(MODEL)
    disc = Discriminator.from_checkpoint(path, True, likelihood_from="reference", head_init="zero").eval()
    rm = RewardModel(disc, load_tokenizer(path), batch_size=size["batch"])
    data = common.ROOT.parent / "shared" / "data" / "gsm8k" / "train.jsonl"
    task = get_task(TaskArgs(task="gsm8k", data=str(data)))
    examples = task.examples("train")[: size["traces"]]
    prompts, responses = [task.prompt(ex) for ex in examples], [ex.expert for ex in examples]
    batch = rm.encode(prompts, responses)
    prepared = [batch.select(idx) for idx in sorted_minibatches(batch, rm.batch_size)]

    def bare() -> None:
        with torch.no_grad():
            for b in prepared:
                disc(b.input_ids, b.attention_mask, b.response_mask)

    api = repeat(lambda: rm.score(prompts, responses), size["repeats"])
    forward = repeat(bare, size["repeats"])
    real = int(batch.attention_mask.sum())
    computed = sum(int(b.attention_mask.numel()) for b in prepared)  # padded positions are computed too
    response = int(batch.response_mask.sum())
    cfg = disc.reference.config
    # backbone and reference decoders on every computed position; the LM head on response tokens only
    flops = 2 * computed * decoder_flops(cfg, computed // len(batch)) + response * head_flops(cfg)
    out = {
        "traces": len(batch),
        "real_tokens": real,
        "computed_tokens": computed,
        "api_tokens_per_s": common.summarize([real / s for s in api], digits=1),
        "bare_tokens_per_s": common.summarize([real / s for s in forward], digits=1),
    }
    out["api_over_bare"] = out["api_tokens_per_s"]["median"] / out["bare_tokens_per_s"]["median"]
    out["bare_mfu"] = flops / common.summarize(forward)["median"] / 1e9 / peak
    return out


STEP_VARIANTS = ("grpo", "airl_separate", "airl_shared")
GSM8K = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "train.jsonl"


def step_in_child(variant: str, size: dict[str, int], args) -> dict[str, Any]:
    """`step_time.py` for one variant in a child process: its step figures and its peak RSS in MiB."""
    import json
    import os
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="rairl-step-") as tmp:
        argv = [sys.executable, str(Path(__file__).with_name("step_time.py")), "--model", MODEL, "--task", "gsm8k",
                "--data", str(GSM8K), "--lora_r", str(size["lora_r"]), "--free_length", "--completion_length",
                str(size["completion_length"]), "--num_generations", str(size["num_generations"]),
                "--prompts_per_step", str(size["prompts_per_step"]), "--steps", str(size["repeats"]), "--warmup", "1",
                "--variants", variant, "--out", tmp, "--threads", str(args.threads)]  # fmt: skip
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        output = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        if status:
            raise RuntimeError(f"step_time.py --variants {variant} failed:\n{output[-3000:]}")
        (path,) = Path(tmp).glob("step_time_*.json")
        result = json.loads(path.read_text())["results"][variant]
    return {**result, "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    size = SMOKE if args.smoke else SIZE
    threads = common.set_threads(args.threads)
    from rairl.models import ModelArgs, load_policy

    peak = matmul_peak(size["matmul"], size["repeats"])
    model, _ = load_policy(ModelArgs(model=MODEL))
    sft = sft_step(model, size, peak["gflops"]["median"])
    del model
    score = scoring(size, peak["gflops"]["median"])
    steps = {v: step_in_child(v, size, args) for v in STEP_VARIANTS}
    ratio = common.ratio(steps["airl_shared"]["step_s"], steps["grpo"]["step_s"])
    before = common.ratio(steps["airl_separate"]["step_s"], steps["grpo"]["step_s"])
    payload = {
        "size": size,
        "threads": threads,
        "peak": peak,
        "sft_step": sft,
        "scoring": score,
        "step": steps,
        "step_ratio_airl_over_grpo": ratio,
        "step_ratio_separate_over_grpo": before,
    }
    path = common.save("smollm2_speed", payload, args)
    print(
        common.table(
            [
                ["fp32 matmul peak", f"{peak['gflops']['median']:.1f} GFLOP/s", ""],
                ["SFT step", f"{sft['tokens_per_s']['median']:.1f} tokens/s", f"MFU {sft['mfu']:.1%}"],
                [
                    "scoring API",
                    f"{score['api_tokens_per_s']['median']:.1f} tokens/s",
                    f"{score['api_over_bare']:.2f}x of the bare forward",
                ],
                [
                    "bare D forward (2 LMs)",
                    f"{score['bare_tokens_per_s']['median']:.1f} tokens/s",
                    f"MFU {score['bare_mfu']:.1%}",
                ],
                *[
                    [
                        f"{v} step (peak RSS)",
                        common.fmt(steps[v]["step_s"]),
                        f"{steps[v]['peak_rss_mib']:.0f} MiB, {steps[v]['completion_tokens']['mean']} tokens/sample",
                    ]
                    for v in STEP_VARIANTS
                ],
                ["R-AIRL step / GRPO step", f"{ratio:.2f}x shared base", f"{before:.2f}x separate models"],
            ],
            ["what", "figure", "note"],
        )
    )
    print(f"saved {path}")


if __name__ == "__main__":
    main()
