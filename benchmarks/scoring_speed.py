"""Scoring speed: traces per second of the scoring API (DESIGN §2.1) against the bare discriminator forward on the
same padded mini-batches, and length-sorted against unsorted batching, on a realistic length mix.

    .venv/bin/python benchmarks/scoring_speed.py            # demo-sized discriminator (hidden 128, 4 layers)
    .venv/bin/python benchmarks/scoring_speed.py --smoke
    # GPU, bf16, ~100M parameters built from config:
    .venv/bin/python benchmarks/scoring_speed.py --hidden_size 768 --num_layers 10 --num_heads 12 --dtype bfloat16

The traces, shuffled with a fixed seed: arith expert traces (test and OOD splits: 2-6 steps), one perturbed copy
of each (policy-like near-misses), and GSM8K train solutions when `../shared/data/gsm8k` exists (several times
longer; skipped, and said so, when it does not). The discriminator is likelihood-aware (the default), built from
config with the character tokenizer. Timed, in each repeat, one after another:

    api             `RewardModel.score(prompts, responses)`: tokenisation, sorted forward, token rewards, step and
                    trace views (every aggregation) — what a user calls
    token_rewards   `RewardModel.token_rewards(batch)` on a batch encoded beforehand: sorted forward + r_t
    bare_sorted     `discriminator(input_ids, attention_mask, response_mask)` under no_grad on the very mini-batches
                    the API forms (length-sorted, `--batch_size` rows, trimmed), built beforehand: the floor
    unsorted        as token_rewards, but the mini-batches take the traces in input order
    bare_unsorted   as bare_sorted, on the input-order mini-batches

One warm-up round is dropped; the median and spread of `--repeats` rounds are reported, as traces/s. Target:
api / bare_sorted ≥ 0.9 (the API's overhead at most 10%). Writes `benchmarks/results/scoring_speed.json`.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import common
import torch

logger = logging.getLogger(__name__)

GSM8K = common.ROOT.parent / "shared" / "data" / "gsm8k"
SMOKE = dict(hidden_size=32, num_layers=1, num_heads=2, n_traces=24, batch_size=8, repeats=1)


def length_mix(n: int, seed: int) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """n (prompt, response) pairs: arith experts, perturbed arith experts and GSM8K solutions in equal parts
    (arith alone when GSM8K is absent), shuffled. Also returns how many of each source."""
    from rairl.rewards.perturb import perturb
    from rairl.tasks import TaskArgs, get_task

    rng = random.Random(seed)
    arith = get_task(TaskArgs(task="arith", n_eval=max(n, 8)))
    experts = [(arith.prompt(ex), ex.expert) for split in ("test", "ood") for ex in arith.examples(split)]
    rng.shuffle(experts)
    sources: dict[str, list[tuple[str, str]]] = {
        "arith_expert": experts,
        "arith_perturbed": [(p, perturb(r, rng).response) for p, r in experts],
    }
    if (GSM8K / "train.jsonl").is_file():
        gsm8k = get_task(TaskArgs(task="gsm8k", data=str(GSM8K)))
        sources["gsm8k_train"] = [(gsm8k.prompt(ex), ex.expert) for ex in gsm8k.examples("train")]
    else:
        logger.warning("%s not found: the length mix holds arith traces only", GSM8K)
    share = -(-n // len(sources))
    counts, pairs = {}, []
    for name, rows in sources.items():
        take = rng.sample(rows, min(share, len(rows), n - len(pairs)))
        counts[name] = len(take)
        pairs += take
    rng.shuffle(pairs)
    return pairs, counts


def build_reward_model(args) -> Any:
    from rairl.discriminator import Discriminator
    from rairl.models import ModelArgs, build_tiny
    from rairl.reward_model import RewardModel
    from rairl.tasks.base import line_spans

    backbone, tokenizer = build_tiny(
        ModelArgs(
            hidden_size=args.hidden_size,
            num_layers=args.num_layers,
            num_heads=args.num_heads,
            max_position_embeddings=4096,
            dtype=args.dtype,
        ),
        seed=args.seed,
    )
    disc = Discriminator.from_causal_lm(backbone, likelihood=True)
    return RewardModel(disc, tokenizer, step_spans=line_spans, batch_size=args.batch_size).to(args.device)


def chunks(batch, batch_size: int, sort: bool) -> list[list[int]]:
    """Row indices of each mini-batch: `forward_sorted`'s (longest first, prompts grouped) or input order."""
    from rairl.trace_scorer import sorted_minibatches

    if sort:
        return sorted_minibatches(batch, batch_size)
    return [list(range(i, min(i + batch_size, len(batch)))) for i in range(0, len(batch), batch_size)]


def unsorted_token_rewards(rm, batch) -> torch.Tensor:
    """`RewardModel.token_rewards` with input-order mini-batches."""
    from rairl.trace_scorer import forward_minibatches

    disc = rm.discriminator
    scores = forward_minibatches(
        lambda b: disc(b.input_ids, b.attention_mask, b.response_mask),
        batch,
        chunks(batch, rm.batch_size, sort=False),
        rm.device,
    )
    return rm.token_rewards(batch, scores)


def padding(batch, batch_size: int, sort: bool) -> dict[str, float]:
    """Tokens computed (rows × trimmed width, summed over mini-batches) against real tokens."""
    real = int(batch.attention_mask.sum())
    lengths = batch.attention_mask.sum(1)
    computed = sum(len(idx) * int(lengths[idx].max()) for idx in chunks(batch, batch_size, sort))
    return {"real_tokens": real, "computed_tokens": computed, "padding_fraction": round(1 - real / computed, 4)}


def measure(rm, pairs: list[tuple[str, str]], repeats: int) -> dict[str, list[float]]:
    """Seconds per pass over all traces, for each way of scoring, round-robin so load drifts hit all alike."""
    prompts, responses = [p for p, _ in pairs], [r for _, r in pairs]
    batch = rm.encode(prompts, responses)
    disc = rm.discriminator.eval()
    prepared = {
        sort: [batch.select(idx).to(rm.device) for idx in chunks(batch, rm.batch_size, sort)] for sort in (True, False)
    }

    def bare(sort: bool) -> None:
        with torch.no_grad():
            for b in prepared[sort]:
                disc(b.input_ids, b.attention_mask, b.response_mask)

    ways = {
        "api": lambda: rm.score(prompts, responses),
        "token_rewards": lambda: rm.token_rewards(batch),
        "bare_sorted": lambda: bare(True),
        "unsorted": lambda: unsorted_token_rewards(rm, batch),
        "bare_unsorted": lambda: bare(False),
    }
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    for round_ in range(repeats + 1):  # round 0 warms up (allocator, kernels) and is dropped
        for name, fn in ways.items():
            t = common.timed(fn)
            if round_:
                seconds[name].append(t)
    return seconds


def main(argv: list[str] | None = None) -> None:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--hidden_size", type=int, default=128)
    p.add_argument("--num_layers", type=int, default=4)
    p.add_argument("--num_heads", type=int, default=4)
    p.add_argument("--dtype", default="float32", help="float32 | bfloat16 | float16")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--n_traces", type=int, default=512)
    p.add_argument("--batch_size", type=int, default=32, help="traces per forward (RewardModel.batch_size)")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    for key, value in (SMOKE if args.smoke else {}).items():
        setattr(args, key, value)
    logging.basicConfig(level=logging.WARNING)
    common.set_threads(args.threads)
    rm = build_reward_model(args)
    pairs, counts = length_mix(args.n_traces, args.seed)
    seconds = measure(rm, pairs, args.repeats)
    n = len(pairs)
    throughput = {name: common.summarize([n / s for s in secs], digits=1) for name, secs in seconds.items()}
    batch = rm.encode([p for p, _ in pairs], [r for _, r in pairs])
    lengths = batch.attention_mask.sum(1).float()
    payload = {
        "setup": {
            k: getattr(args, k)
            for k in (
                "hidden_size",
                "num_layers",
                "num_heads",
                "dtype",
                "device",
                "n_traces",
                "batch_size",
                "repeats",
                "seed",
            )
        },
        "discriminator_params": sum(q.numel() for q in rm.discriminator.parameters()),
        "traces": {
            "n": n,
            "sources": counts,
            "gsm8k_included": "gsm8k_train" in counts,
            "tokens_min": int(lengths.min()),
            "tokens_median": int(lengths.median()),
            "tokens_max": int(lengths.max()),
        },
        "traces_per_s": throughput,
        "seconds_per_pass": {name: common.summarize(secs) for name, secs in seconds.items()},
        "padding": {
            "sorted": padding(batch, args.batch_size, True),
            "unsorted": padding(batch, args.batch_size, False),
        },
        "ratios": {
            "api_vs_bare": common.ratio(throughput["api"], throughput["bare_sorted"]),
            "token_rewards_vs_bare": common.ratio(throughput["token_rewards"], throughput["bare_sorted"]),
            "sorted_vs_unsorted": common.ratio(throughput["token_rewards"], throughput["unsorted"]),
        },
        "target_api_vs_bare": 0.9,
    }
    path = common.save("scoring_speed", payload, args)
    print(
        f"scoring {n} traces ({counts}; {payload['traces']['tokens_min']}-{payload['traces']['tokens_max']} "
        f"tokens), batch {args.batch_size}, median of {args.repeats}"
    )
    rows = [[name, common.fmt(t, "traces/s", 1)] for name, t in throughput.items()]
    print(common.table(rows, ["way", "traces/s median [min-max]"]))
    ratios, pad = payload["ratios"], payload["padding"]
    print(
        f"api / bare: {ratios['api_vs_bare']}   sorted / unsorted: {ratios['sorted_vs_unsorted']}   padding "
        f"sorted {pad['sorted']['padding_fraction']} vs unsorted {pad['unsorted']['padding_fraction']}"
    )
    print(f"saved {path}")


if __name__ == "__main__":
    main()
