r"""GRPO in plain torch: an independent reference for `rairl grpo` (TRL's `GRPOTrainer` with the verifier reward).

    .venv/bin/python benchmarks/reference_grpo.py --base runs/demo/base        # both trainers, 3 seeds, ~15 min
    .venv/bin/python benchmarks/reference_grpo.py --smoke                      # seconds; its figures mean nothing

One step, for P prompts x_i drawn without replacement from the train split and G samples each:

    y_ij ~ π_θ(· | x_i)                           temperature T, no top-k / top-p cut
    r_ij = 1[answer(y_ij) verifies]
    A_ij = (r_ij − mean_j r_ij) / (std_j r_ij + 1e-4)                      std with Bessel's correction, as TRL
    ρ_ijt = π_θ(y_ijt | x_i, y_ij<t) / π_θold(y_ijt | x_i, y_ij<t)        = 1 in value: one update per batch
    L(θ) = − Σ_ijt min(ρ_ijt A_ij, clip(ρ_ijt, 1 − ε, 1 + ε) A_ij) / Σ_ijt 1     (token mean over the batch)
    θ ← AdamW(θ, ∇L), the gradient norm clipped at 1

That is TRL's default loss (`loss_type="dapo"`, β = 0, one iteration per generation). Nothing here comes from TRL:
sampling is `model.generate`, the rest is the code below. The script trains it and `rairl grpo` from the same base
on the same prompts with the same budget (steps × P × G samples, learning rate, temperature), evaluates greedy
accuracy on the test split before and after, and compares the two gains (paired per question, seeds pooled). A
wrong sign, a misaligned mask or a lost gradient in either path shows as gains that disagree.
Writes `benchmarks/results/reference_grpo.json`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import flags, parser, run_once, save, set_threads, smoke_base  # noqa: E402


def group_zscore(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """A_ij = (r_ij − mean_j r) / (std_j r + 1e-4) for rewards (P·G,) in groups of G; returns (P·G,)."""
    groups = rewards.view(-1, group_size)  # (P, G)
    advantages = (groups - groups.mean(1, keepdim=True)) / (groups.std(1, keepdim=True) + 1e-4)
    return advantages.view(-1)


def clipped_surrogate(
    logps: torch.Tensor, old_logps: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, epsilon: float
) -> torch.Tensor:
    """L = −Σ_t min(ρ_t A, clip(ρ_t, 1−ε, 1+ε) A) / Σ_t 1 over the completion tokens of a batch.

    logps, old_logps, mask: (B, T); advantages: (B,), one per sample."""
    assert logps.shape == old_logps.shape == mask.shape and advantages.shape == logps.shape[:1], "shape mismatch"
    ratio = torch.exp(logps - old_logps)  # (B, T)
    a = advantages[:, None]
    per_token = -torch.minimum(ratio * a, ratio.clamp(1 - epsilon, 1 + epsilon) * a)
    return (per_token * mask).sum() / mask.sum().clamp(min=1)


def completion_logps(model, prompts: list[list[int]], completions: list[list[int]], pad_id: int) -> tuple:
    """log π(y_t | x, y_<t) of every completion token, right-padded: (B, T) values and their mask."""
    rows = [p + c for p, c in zip(prompts, completions)]
    width = max(map(len, rows))
    ids = torch.tensor([r + [pad_id] * (width - len(r)) for r in rows])  # (B, L)
    attention = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    logits = model(input_ids=ids, attention_mask=attention).logits[:, :-1].float()  # (B, L-1, V): predicts ids[:, 1:]
    token_logps = torch.log_softmax(logits, -1).gather(2, ids[:, 1:, None]).squeeze(2)  # (B, L-1)
    values = [token_logps[b, len(p) - 1 : len(p) - 1 + len(c)] for b, (p, c) in enumerate(zip(prompts, completions))]
    mask = [torch.ones(len(c)) for c in completions]
    pad = torch.nn.utils.rnn.pad_sequence
    return pad(values, batch_first=True), pad(mask, batch_first=True)  # (B, T_max) each


@torch.no_grad()
def sample_group(model, tokenizer, prompt_ids: list[list[int]], group: int, temperature: float, max_new: int):
    """G completions (token ids, cut after EOS, EOS kept) of each prompt: list of P·G id lists, prompt-major."""
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    width = max(map(len, prompt_ids))
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompt_ids])  # left padding
    attention = (torch.arange(width)[None] >= torch.tensor([width - len(p) for p in prompt_ids])[:, None]).long()
    out = model.generate(
        input_ids=ids,
        attention_mask=attention,
        do_sample=True,
        temperature=temperature,
        top_k=0,
        top_p=1.0,
        max_new_tokens=max_new,
        num_return_sequences=group,
        pad_token_id=pad,
        eos_token_id=eos,
    )[:, width:].tolist()
    return [row[: row.index(eos) + 1] if eos in row else row for row in out]


def train(
    base: str,
    output: Path,
    *,
    seed: int,
    steps: int,
    prompts: int,
    group: int,
    lr: float,
    temperature: float,
    max_new: int,
    epsilon: float,
    n_train: int,
) -> dict[str, Any]:
    """The loop in the module docstring; saves the policy in `output` and returns the per-step training reward."""
    from rairl.models import ModelArgs, load_policy
    from rairl.tasks import TaskArgs, get_task

    torch.manual_seed(seed)
    task = get_task(TaskArgs(n_train=n_train))
    examples = task.examples("train")
    model, tokenizer = load_policy(ModelArgs(model=base))
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(seed)).tolist()
    curve = []
    for step in range(steps):
        batch = [examples[order[(step * prompts + i) % len(order)]] for i in range(prompts)]
        prompt_ids = [tokenizer(task.prompt(ex), add_special_tokens=False)["input_ids"] for ex in batch]
        model.eval()
        completions = sample_group(model, tokenizer, prompt_ids, group, temperature, max_new)
        texts = tokenizer.batch_decode(completions, skip_special_tokens=True)
        rewards = torch.tensor([float(task.verify(t, batch[k // group])) for k, t in enumerate(texts)])
        advantages = group_zscore(rewards, group)  # (P·G,)
        model.train()
        repeated = [p for p in prompt_ids for _ in range(group)]  # prompt-major, as the completions
        logps, mask = completion_logps(model, repeated, completions, tokenizer.pad_token_id)  # (P·G, T)
        loss = clipped_surrogate(logps, logps.detach(), advantages, mask, epsilon)
        optimiser.zero_grad()
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        curve.append(
            {"step": step + 1, "reward": rewards.mean().item(), "loss": loss.item(), "grad_norm": grad_norm.item()}
        )
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    return {"curve": curve}


def greedy_correct(policy: str | Path, n_eval: int, split: str = "test") -> list[float]:
    """Greedy verdicts (1/0) of `policy` on the first `n_eval` questions of `split`, in question order."""
    from rairl.inference.sampling import load_for_inference, sample_rows
    from rairl.models import ModelArgs
    from rairl.tasks import TaskArgs, get_task

    task = get_task(TaskArgs(n_eval=n_eval))
    model, tokenizer = load_for_inference(ModelArgs(model=str(policy)))
    rows = sample_rows(model, tokenizer, task, task.examples(split), greedy=True, batch_size=64, progress=False)
    return [float(r["correct"]) for r in rows]


def trl_argv(base: Path, run: Path, seed: int, args) -> list[str]:
    """`rairl grpo` with the reference's budget and sampling (TRL's defaults otherwise: dapo loss, β = 0, μ = 1)."""
    return [
        "grpo",
        *flags(
            model=base,
            output_dir=run,
            seed=seed,
            max_steps=args.steps,
            num_generations=args.group,
            per_device_train_batch_size=args.prompts * args.group,
            learning_rate=args.lr,
            warmup_steps=0,
            lr_scheduler_type="constant",
            temperature=args.temperature,
            epsilon=args.epsilon,
            max_completion_length=args.max_new,
            logging_steps=1,
            report_to="none",
            save_steps=10**9,
            resume_from_checkpoint="auto",  # a run cut short continues from its last checkpoint
            threads=args.threads,
        ),
    ]


def main() -> None:
    from rairl.evaluation.metrics import paired_diff, summarize
    from rairl.trainers.monitor import slope

    p = parser(__doc__)
    p.add_argument("--base", default="runs/demo/base", help="the policy both trainers start from")
    p.add_argument("--output", default="runs/reference_grpo", help="run folder")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--prompts", type=int, default=8, help="prompts per step (P)")
    p.add_argument("--group", type=int, default=8, help="samples per prompt (G)")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--epsilon", type=float, default=0.2)
    p.add_argument("--max_new", type=int, default=64, help="most tokens per sample")
    p.add_argument("--n_eval", type=int, default=256, help="test questions")
    args = p.parse_args()
    if args.smoke:
        args.seeds, args.steps, args.prompts, args.group, args.n_eval, args.max_new = "0", 2, 2, 2, 8, 16
    set_threads(args.threads)
    out = Path(args.output + ("_smoke" if args.smoke else ""))
    base = Path(args.base)
    if args.smoke:  # a small base of its own
        base = smoke_base(out / "base", 20)
    seeds = [int(s) for s in args.seeds.split(",")]
    before = greedy_correct(base, args.n_eval)
    after: dict[str, list[float]] = {"reference": [], "trl": []}
    runs: dict[str, Any] = {}
    for seed in seeds:
        ref_dir, trl_dir = out / f"seed{seed}" / "reference", out / f"seed{seed}" / "trl"
        if not (ref_dir / "curve.json").is_file():
            options = {k: getattr(args, k) for k in ("steps", "prompts", "group", "lr", "temperature", "max_new")}
            log = train(str(base), ref_dir, seed=seed, epsilon=args.epsilon, n_train=5000, **options)
            (ref_dir / "curve.json").write_text(json.dumps(log))
        run_once(trl_dir / "train_summary.json", trl_argv(base, trl_dir, seed, args))
        curves = {
            "reference": [r["reward"] for r in json.loads((ref_dir / "curve.json").read_text())["curve"]],
            "trl": [r["rewards/correctness/mean"] for r in map(json.loads, (trl_dir / "log.jsonl").open())
                    if "rewards/correctness/mean" in r],
        }  # fmt: skip
        for name, run in (("reference", ref_dir), ("trl", trl_dir)):
            verdicts = greedy_correct(run, args.n_eval)
            after[name] += verdicts
            third = max(1, len(curves[name]) // 3)
            runs[f"seed{seed}/{name}"] = {
                "greedy": summarize(verdicts),
                "reward_first_last_third": [sum(c) / len(c) for c in (curves[name][:third], curves[name][-third:])],
                "reward_slope_per_100_steps": 100 * slope(curves[name]),
            }
    results: dict[str, Any] = {
        "settings": {k: getattr(args, k) for k in ("base", "seeds", "steps", "prompts", "group", "lr", "temperature",
                                                   "epsilon", "max_new", "n_eval")},
        "base": summarize(before),
        "runs": runs,
        "reference_minus_base": paired_diff(after["reference"], before * len(seeds)),
        "trl_minus_base": paired_diff(after["trl"], before * len(seeds)),
        "reference_minus_trl": paired_diff(after["reference"], after["trl"]),
    }  # fmt: skip
    for key in ("reference_minus_base", "trl_minus_base", "reference_minus_trl"):
        s = results[key]
        print(f"{key:<22} {s['mean']:+.3f} [{s['ci95'][0]:+.3f}, {s['ci95'][1]:+.3f}] n={s['n']}")
    print(f"saved {save('reference_grpo', results, args)}")


if __name__ == "__main__":
    main()
