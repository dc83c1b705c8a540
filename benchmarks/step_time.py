"""Training step time: one `rairl airl` step against one stock `trl.GRPOTrainer` step, side by side in one run.

    .venv/bin/python benchmarks/step_time.py             # demo-sized policy (hidden 128, 4 layers), G=8, L=64
    .venv/bin/python benchmarks/step_time.py --smoke     # a few seconds: proves the script runs
    # GPU, bf16, ~100M parameters built from config:
    .venv/bin/python benchmarks/step_time.py --hidden_size 768 --num_layers 10 --num_heads 12 --mixed_precision bf16

All variants train the same tiny policy (built from config, saved once, loaded by each trainer) on the same arith
prompts in the same order, with the same group size G, prompts per step and completion length L. Every sample is
exactly L tokens long: generation runs with min_new_tokens = max_new_tokens = L, and the special tokens other than
EOS are suppressed (an untrained policy would otherwise draw <pad>/<unk>, which a trained one does not). Variants:

    grpo            trl.GRPOTrainer with a rule reward (arith answer correctness), beta = 0
    airl_disc_same  R-AIRL, discriminator started from the policy (as wide and as deep as the policy)
    airl_disc_half  R-AIRL, a fresh tiny discriminator half as wide (same depth)
    airl_disc_same_every2  as airl_disc_same, D updated on every second step (update ratio 1:2); its
                    steps alternate, so compare its mean (an even number of measured steps covers whole cycles)
    airl_separate   with --lora_r: LoRA policy, and a LoRA discriminator of its own (with its reference copy)
    airl_shared     with --lora_r: both on one shared base (`rairl.models.shared_base`), ℓ_t computed once
`--task gsm8k --data FILE` takes a real task's prompts, `--free_length` lets samples end at EOS (L the cap).

A step is timed from `on_step_begin` to `on_step_end` (generation, scoring, loss, backward, optimizer step); the
first `--warmup` steps are dropped and the median and spread of the next `--steps` are reported. Parts, timed by
wrapping the trainer's own methods (their sum plus `policy_update` is the step):

    generation      `_generate`: prompt tokenisation, `model.generate`, decoding
    encode          R-AIRL `policy_batch`: the samples as discriminator batches (ids kept, step ends found)
    disc_update     R-AIRL `update_discriminator`: experts + perturbed experts + samples, forward/backward/step
    scoring         R-AIRL `completion_rewards`: discriminator forward (no grad) and token rewards r_t
    reward_funcs    `_calculate_rewards`: the rule reward (both trainers run it; R-AIRL logs it as a verifier)
    policy_update   the rest: TRL's advantages and bookkeeping, policy forward, loss, backward, optimizer step

Writes `benchmarks/results/step_time.json` (`--smoke`: `benchmarks/results/smoke/`). Target: R-AIRL ≤ 1.3× GRPO.
"""

from __future__ import annotations

import functools
import gc
import logging
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import common
from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback

# part name -> trainer method it times; `policy_update` is the step minus these
AIRL_PARTS = {
    "generation": "_generate",
    "encode": "policy_batch",
    "disc_update": "update_discriminator",
    "scoring": "completion_rewards",
    "reward_funcs": "_calculate_rewards",
}
GRPO_PARTS = {"generation": "_generate", "reward_funcs": "_calculate_rewards"}
PART_ORDER = ("generation", "encode", "disc_update", "scoring", "reward_funcs", "policy_update")


@dataclass
class Setup:
    """One measured configuration (the same for every variant)."""

    model: str = "tiny"  # or a pretrained model (`smollm2-135m`, a folder): then the width options do not apply
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    num_generations: int = 8
    completion_length: int = 64
    prompts_per_step: int = 8
    steps: int = 6
    warmup: int = 1
    mixed_precision: str = "no"
    threads: int = 0
    seed: int = 0
    task: str = "arith"  # gsm8k with `data`: the prompts of a real task
    data: str | None = None
    lora_r: int = 0  # LoRA on the policy and (R-AIRL) on the discriminator; with both, the base is shared
    free_length: bool = False  # samples stop at EOS (at most completion_length tokens), not forced to exactly L

    @property
    def batch_size(self) -> int:
        return self.prompts_per_step * self.num_generations

    @property
    def max_length(self) -> int:  # RoPE: a longer context costs nothing until it is used
        return self.completion_length + 512


SMOKE = dict(
    hidden_size=32,
    num_layers=1,
    num_heads=2,
    num_generations=2,
    completion_length=8,
    prompts_per_step=2,
    steps=1,
    warmup=1,
)


class StepTimer(TrainerCallback):
    """Wall time of every optimizer step (`on_step_begin` → `on_step_end`) and of named parts inside it."""

    def __init__(self, names: list[str]) -> None:
        self.names = names  # a part not run in a step (no D update under --disc_update_every) counts 0 there
        self.steps: list[dict[str, float]] = []
        self.lengths: list[int] = []
        self._parts: dict[str, float] = defaultdict(float)
        self._start = 0.0

    def wrap(self, name: str, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            common.sync()
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                common.sync()
                self._parts[name] += time.perf_counter() - start

        return timed

    def on_step_begin(self, args, state, control, **kwargs):
        common.sync()
        self._parts = defaultdict(float)
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        common.sync()
        total = time.perf_counter() - self._start
        parts = {name: self._parts[name] for name in self.names}
        parts["policy_update"] = total - sum(parts.values())
        self.steps.append({"total": total, **parts})


def instrument(trainer, parts: dict[str, str]) -> StepTimer:
    """Wrap `trainer`'s methods named in `parts` (on the instance) and register the step timer."""
    timer = StepTimer(list(parts))
    for name, method in parts.items():
        setattr(trainer, method, timer.wrap(name, getattr(trainer, method)))
    generate = trainer._generate

    def generate_and_count(prompts):
        out = generate(prompts)
        timer.lengths += [len(ids) for ids in out[1]]
        return out

    trainer._generate = generate_and_count
    trainer.add_callback(timer)
    return timer


def force_length(trainer, length: int) -> dict[str, Any]:
    """Every sample exactly `length` tokens: no EOS before `length`, no other special token at all."""
    tok = trainer.processing_class
    eos = set(trainer.eos_token_ids) if isinstance(trainer.eos_token_ids, list) else {trainer.eos_token_ids}
    extra = {
        "min_new_tokens": length,
        "max_new_tokens": length,
        "suppress_tokens": sorted(set(tok.all_special_ids) - eos) or None,
    }
    for key, value in extra.items():
        setattr(trainer.generation_config, key, value)
    trainer.generation_kwargs.update(extra)
    return extra


def save_policy(setup: Setup, folder: Path) -> Path:
    """The tiny policy every variant starts from, saved once (each trainer loads the same weights); a pretrained
    `--model` is used from its folder."""
    from rairl.models import ModelArgs, build_tiny
    from rairl.models.gguf import resolve_model

    if setup.model != "tiny":
        return Path(resolve_model(setup.model))

    model, tokenizer = build_tiny(
        ModelArgs(
            hidden_size=setup.hidden_size,
            num_layers=setup.num_layers,
            num_heads=setup.num_heads,
            max_position_embeddings=setup.max_length,
        ),
        seed=setup.seed,
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def config(setup: Setup, policy: Path, output_dir: Path, **overrides: Any):
    """The `rairl airl` options of a measured run (the GRPO variant reads the same options)."""
    from rairl.trainers import airl

    total = setup.warmup + setup.steps
    return airl.Config(
        model=str(policy),
        max_position_embeddings=setup.max_length,
        task=setup.task,
        data=setup.data,
        lora_r=setup.lora_r,
        disc_lora_r=setup.lora_r,
        n_train=max(64, 2 * total * setup.prompts_per_step),
        output_dir=str(output_dir),
        seed=setup.seed,
        max_steps=total,
        per_device_train_batch_size=setup.batch_size,
        num_generations=setup.num_generations,
        max_completion_length=setup.completion_length,
        report_to="none",
        logging_steps=10**6,
        save_steps=10**9,
        threads=setup.threads,
        warmup_steps=0.0,
        lr_scheduler_type="constant",
        disc_warmup_steps=0,
        bf16=setup.mixed_precision == "bf16",
        fp16=setup.mixed_precision == "fp16",
        use_cpu=not __import__("torch").cuda.is_available(),
        **overrides,
    )


def grpo_trainer(cfg):
    """Stock `trl.GRPOTrainer` with the rule reward, built as `rairl grpo` builds it."""
    from trl import GRPOTrainer

    from rairl.trainers.grpo import trainer_inputs

    return GRPOTrainer(**trainer_inputs(cfg)[2])


def airl_trainer(cfg):
    from rairl.trainers import airl

    return airl.build_trainer(cfg)


def variants(setup: Setup) -> dict[str, tuple[Callable, dict[str, str], dict[str, Any]]]:
    """name -> (trainer builder, parts to time, option overrides)."""
    half = dict(
        disc_model="tiny",
        disc_hidden_size=setup.hidden_size // 2,
        disc_num_layers=setup.num_layers,
        disc_num_heads=setup.num_heads,
    )
    return {
        "grpo": (grpo_trainer, GRPO_PARTS, {}),
        "airl_disc_same": (airl_trainer, AIRL_PARTS, {"disc_model": "policy"}),
        "airl_disc_half": (airl_trainer, AIRL_PARTS, half),
        "airl_disc_same_every2": (airl_trainer, AIRL_PARTS, {"disc_model": "policy", "disc_update_every": 2}),
        # with --lora_r: the discriminator a model of its own (and its reference copy), or on the policy's base
        "airl_separate": (airl_trainer, AIRL_PARTS, {"disc_model": "policy", "disc_share_base": False}),
        "airl_shared": (airl_trainer, AIRL_PARTS, {"disc_model": "policy", "disc_share_base": True}),
    }


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def run_variant(name: str, setup: Setup, workdir: Path, policy: Path) -> dict[str, Any]:
    """Train one variant for warmup + steps optimizer steps; the measured steps' median and spread per part."""
    known = variants(setup)
    if name not in known:
        raise ValueError(f"unknown variant {name!r}; known: {sorted(known)}")
    build, parts, overrides = known[name]
    cfg = config(setup, policy, workdir / name, **overrides)
    common.set_threads(setup.threads)
    trainer = build(cfg)
    generation = {} if setup.free_length else force_length(trainer, setup.completion_length)
    timer = instrument(trainer, parts)
    trainer.remove_callback(ProgressCallback)  # no progress bar or metrics dict in the figures' console output
    trainer.train()
    measured = timer.steps[setup.warmup :]
    if not measured:
        raise RuntimeError(f"{name}: {len(timer.steps)} steps ran, none left after {setup.warmup} warm-up steps")
    names = [p for p in PART_ORDER if p in measured[0]]
    result = {
        "step_s": common.summarize([s["total"] for s in measured]),
        "parts_s": {p: common.summarize([s[p] for s in measured]) for p in names},
        "completion_tokens": {
            "min": min(timer.lengths),
            "max": max(timer.lengths),
            "mean": round(sum(timer.lengths) / len(timer.lengths), 1),
        },
        "policy_params": n_params(trainer.model),
        "generation_kwargs": generation,
    }
    if hasattr(trainer, "reward_model"):
        result["discriminator_params"] = n_params(trainer.reward_model.discriminator)
    del trainer
    gc.collect()
    return result


def run_all(setup: Setup, names: list[str]) -> dict[str, dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="rairl-bench-") as tmp:
        policy = save_policy(setup, Path(tmp, "policy"))
        return {name: run_variant(name, setup, Path(tmp), policy) for name in names}


def report(results: dict[str, dict[str, Any]]) -> str:
    names = [p for p in PART_ORDER if any(p in r["parts_s"] for r in results.values())]
    base = results.get("grpo")
    rows = []
    for variant, r in results.items():
        cells = [f"{r['parts_s'][p]['median']:.3f}" if p in r["parts_s"] else "-" for p in names]
        vs = f"{common.ratio(r['step_s'], base['step_s']):.2f}x" if base else "-"
        vs_mean = f"{r['step_s']['mean'] / base['step_s']['mean']:.2f}x" if base else "-"
        rows.append([variant, common.fmt(r["step_s"]), f"{r['step_s']['mean']:.3f}", *cells, vs, vs_mean])
    return common.table(rows, ["variant", "step median [min-max]", "mean", *names, "vs grpo", "vs grpo (means)"])


def setup_from(args) -> Setup:
    fields = {k: getattr(args, k) for k in asdict(Setup()) if getattr(args, k, None) is not None}
    return Setup(**{**fields, **(SMOKE if args.smoke else {})})


def add_setup_args(p) -> None:
    d = Setup()
    p.add_argument(
        "--model",
        default=d.model,
        help="tiny (built from the width options) or a pretrained model, "
        "e.g. smollm2-135m (results then go to step_time_MODEL.json)",
    )
    p.add_argument("--hidden_size", type=int, default=d.hidden_size, help="policy width")
    p.add_argument("--num_layers", type=int, default=d.num_layers, help="policy layers")
    p.add_argument("--num_heads", type=int, default=d.num_heads, help="policy attention heads")
    p.add_argument("--prompts_per_step", type=int, default=d.prompts_per_step, help="batch = prompts × G")
    p.add_argument("--steps", type=int, default=d.steps, help="measured optimizer steps per variant (≥ 5)")
    p.add_argument("--warmup", type=int, default=d.warmup, help="steps dropped before measuring")
    p.add_argument("--mixed_precision", default=d.mixed_precision, help="no | bf16 | fp16 (GPU autocast)")
    p.add_argument("--task", default=d.task, help="arith, or gsm8k with --data (a real task's prompts)")
    p.add_argument("--data", default=d.data, help="the task's data file (gsm8k: ../shared/data/gsm8k/train.jsonl)")
    p.add_argument("--lora_r", type=int, default=d.lora_r, help="LoRA rank of the policy and the discriminator")
    p.add_argument("--free_length", action="store_true", help="samples end at EOS (L is the cap), as in training")


def main(argv: list[str] | None = None) -> None:
    p = common.parser(__doc__.split("\n\n")[0])
    add_setup_args(p)
    p.add_argument("--num_generations", type=int, default=Setup.num_generations, help="group size G")
    p.add_argument("--completion_length", type=int, default=Setup.completion_length, help="L: tokens per sample")
    p.add_argument("--variants", default=",".join(variants(Setup())), help="comma-separated, run in this order")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    setup = setup_from(args)
    results = run_all(setup, [v for v in args.variants.split(",") if v])
    payload: dict[str, Any] = {"setup": asdict(setup), "results": results}
    if "grpo" in results:
        payload["ratio_vs_grpo"] = {
            k: common.ratio(r["step_s"], results["grpo"]["step_s"]) for k, r in results.items() if k != "grpo"
        }
        payload["target_ratio"] = 1.3
    path = common.save("step_time" if setup.model == "tiny" else f"step_time_{Path(setup.model).name}", payload, args)
    shape = f"{setup.hidden_size}x{setup.num_layers}" if setup.model == "tiny" else setup.model
    length = f"at most {setup.completion_length}" if setup.free_length else f"exactly {setup.completion_length}"
    print(
        f"step time (s), {setup.batch_size} sequences of {length} tokens "
        f"(G={setup.num_generations}), policy {shape}, "
        f"median of {setup.steps} steps after {setup.warmup} warm-up"
    )
    print(report(results))
    print(f"saved {path}")


if __name__ == "__main__":
    main()
