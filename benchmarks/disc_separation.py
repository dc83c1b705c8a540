"""Does a discriminator trained against a weak policy separate expert from perturbed traces? (issue: R-AIRL core)

Trains four discriminators at the same budget, {plain, likelihood-aware} x {random init, SFT init}, on arith:
positives are expert traces, negatives the weak policy's own samples and perturbed expert traces. Held out:
the test split's expert traces against one perturbed copy each. A trace is called expert when D > 1/2 at its
last labelled position; accuracy is over both classes, with n and a 95% bootstrap CI.

    .venv/bin/python benchmarks/disc_separation.py --policy runs/demo/base --init runs/sft_default --steps 150
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch

from rairl.discriminator import Discriminator
from rairl.discriminator_losses import accuracy
from rairl.evaluation.metrics import summarize
from rairl.inference.sampling import sample_rows
from rairl.models import ModelArgs, build_tiny, load_policy
from rairl.reward_model import RewardModel
from rairl.reward_settings import RewardSettings
from rairl.rewards.perturb import perturb
from rairl.tasks.arith import ArithTask
from rairl.trainers.discriminator_update import DiscriminatorArgs, assemble, discriminator_step, make_optimizer

sys.path.insert(0, str(Path(__file__).parent))
from common import write_result  # noqa: E402


def held_out(task: ArithTask, rng: random.Random, n: int) -> tuple[list[str], list[str], list[bool]]:
    prompts, responses, is_expert = [], [], []
    for ex in task.examples("test")[:n]:
        prompts += [task.prompt(ex)] * 2
        responses += [ex.expert, perturb(ex.expert, rng).response]
        is_expert += [True, False]
    return prompts, responses, is_expert


def train_and_eval(name, disc, tokenizer, task, negatives, args, dargs, seed) -> dict:
    torch.manual_seed(seed)
    rng = random.Random(seed)
    rm = RewardModel(
        disc, tokenizer, RewardSettings(granularity=args.granularity), step_spans=task.step_spans, batch_size=64
    )
    optimizer = make_optimizer(disc, dargs)
    train = task.examples("train")
    start = time.perf_counter()
    for _step in range(args.steps):
        exs = rng.sample(train, args.batch // 2)
        prompts = [task.prompt(e) for e in exs]
        experts = [e.expert for e in exs]
        pol = rng.sample(negatives, args.batch // 4)
        pert = [(task.prompt(e), perturb(e.expert, rng).response) for e in exs[: args.batch // 4]]
        parts = [
            ("expert", rm.encode(prompts, experts)),
            ("policy", rm.encode([p for p, _ in pol], [r for _, r in pol])),
            ("perturbed", rm.encode([p for p, _ in pert], [r for _, r in pert])),
        ]
        stats = discriminator_step(disc, disc, optimizer, rm, assemble(parts, tokenizer.pad_token_id), dargs)
    wall = time.perf_counter() - start
    prompts, responses, is_expert = held_out(task, random.Random(1234), args.eval_n)
    batch = rm.encode(prompts, responses)
    scores = rm.scores(batch)
    correct = accuracy(scores, rm.label_mask(batch), torch.tensor(is_expert)).float().tolist()
    return {"variant": name, "accuracy": summarize(correct), "train_wall_s": round(wall, 1), "last_train": stats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", required=True, help="the weak policy: its samples are the negatives")
    parser.add_argument(
        "--init", default=None, help="the SFT checkpoint the '-sft' variants start from (default: --policy)"
    )
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--granularity", default="outcome")
    parser.add_argument("--n_negatives", type=int, default=1000)
    parser.add_argument("--eval_n", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="runs/disc_separation.json")
    parser.add_argument("--variants", default="plain-random,likelihood-random,plain-sft,likelihood-sft")
    args = parser.parse_args()
    torch.set_num_threads(2)
    task = ArithTask()
    policy, tokenizer = load_policy(ModelArgs(model=args.policy))
    rows = sample_rows(
        policy, tokenizer, task, task.examples("train")[: args.n_negatives], n=1, max_new_tokens=64, batch_size=64
    )
    negatives = [(r["prompt"], r["response"]) for r in rows]
    print(f"weak policy: {sum(r['correct'] for r in rows) / len(rows):.3f} accurate on its {len(rows)} negatives")
    dargs = DiscriminatorArgs()
    results = []
    for variant in args.variants.split(","):
        kind, init = variant.split("-")
        if init == "sft":
            backbone = load_policy(ModelArgs(model=args.init or args.policy))[0]
        else:
            c = policy.config
            backbone = build_tiny(
                ModelArgs(hidden_size=c.hidden_size, num_layers=c.num_hidden_layers, num_heads=c.num_attention_heads),
                seed=args.seed + 7,
            )[0]
        disc = Discriminator.from_causal_lm(backbone, likelihood=kind == "likelihood")
        result = train_and_eval(variant, disc, tokenizer, task, negatives, args, dargs, args.seed)
        print(json.dumps(result))
        results.append(result)
    write_result(Path(args.output), {"args": vars(args), "results": results})


if __name__ == "__main__":
    main()
