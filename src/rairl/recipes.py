"""Recipes checked without weights: a recipe (a `rairl airl` YAML) parses, its policy and discriminator build on the
meta device from a stored architecture `config.json`, its LoRA targets exist, and an estimate of the memory one GPU
needs says whether it fits the GPU it is launched on.

Memory per GPU (bytes), with P the parameters of a model, T its trained parameters (LoRA adapters, or P), b the
micro-batch of sequences (`per_device_train_batch_size`), L = prompt + completion tokens, C the completion tokens,
h, n_layers, V the model's width, depth and vocabulary, and N the processes when FSDP shards:

    weights      2·P_policy + 2·P_disc (+ 2·P_disc, the frozen reference ℓ_t is read from)
                 (+ 2·P_policy, the KL reference, when beta > 0 without LoRA)                        bf16
    training     16·T for LoRA adapters (fp32 weight, grad, AdamW m and v); 14·T more for full weights
                 (bf16 grad, fp32 master copy, m and v: the 16 bytes/param of mixed precision, 2 already counted)
    sharding     FSDP full shard divides weights and training state by N
    activations  max(policy step, discriminator update), which run one after the other:
                 policy: n_layers·2·b·L·h (checkpointed layer inputs) + 34·b·L·h (one layer recomputed)
                         [34·b·L·h·n_layers without checkpointing] + 10·b·C·V (bf16 logits, fp32 log-softmax, grad)
                 discriminator: 34·b_D·L·h·n_layers + 8·b_D·L·V (the reference's fp32 logits and log-softmax),
                         b_D = disc_batch_size
    vLLM         vllm_gpu_memory_utilization × GPU memory when vLLM is colocated (its weights and KV cache)
    overhead     2 GiB (CUDA context, allocator fragmentation)

34·b·L·h per layer is the activation memory of a transformer layer in 16-bit with flash attention (Korthikanti
et al. 2022, without the attention-score term). An estimate, to decide whether a recipe is worth starting, not a
measurement; measured memory on this project's CPU runs is in `benchmarks/memory.py`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from accelerate.commands.config.config_args import load_config_from_file
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel

from rairl.config import parse_config
from rairl.models.factory import lora_targets

GIB = 2**30
OVERHEAD_GIB = 2.0


def meta_model(config_file: Path) -> PreTrainedModel:
    """A causal LM built on the meta device (no memory, no weights) from a stored `config.json`."""
    values = json.loads(Path(config_file).read_text(encoding="utf-8"))
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(AutoConfig.for_model(**values))


def lora_parameters(model: PreTrainedModel, r: int, targets: list[str] | str) -> int:
    """Parameters LoRA of rank r adds on `targets` (module names; 'all-linear': every linear layer but the LM
    head), r·(in + out) per adapted layer; ValueError when a named target matches no layer."""
    targets = lora_targets(targets)
    linear = {name: m for name, m in model.named_modules() if isinstance(m, torch.nn.Linear) and name != "lm_head"}
    if targets == "all-linear":
        chosen = list(linear.values())
    else:
        missing = [t for t in targets if not any(name.split(".")[-1] == t for name in linear)]
        if missing:
            known = sorted({name.split(".")[-1] for name in linear})
            raise ValueError(
                f"LoRA target(s) {missing} match no linear layer of {model.config.model_type}; "
                f"its linear layers are {known}"
            )
        chosen = [m for name, m in linear.items() if name.split(".")[-1] in targets]
    return sum(r * (m.in_features + m.out_features) for m in chosen)


def parameters(model: PreTrainedModel) -> int:
    return sum(p.numel() for p in model.parameters())


@dataclass
class Launch:
    name: str
    accelerate: Path
    gpu: str
    gpu_gib: float
    flags: list[str]
    processes: int = 1
    sharded: bool = False


def load_launch(root: Path, name: str, values: dict[str, Any]) -> Launch:
    """A launch of the index, its accelerate config read (and validated) by accelerate's own loader."""
    path = root / values["accelerate"]
    cluster = load_config_from_file(str(path))
    sharded = str(cluster.distributed_type).endswith("FSDP")
    return Launch(
        name,
        path,
        values["gpu"],
        float(values["gpu_gib"]),
        [str(f) for f in values.get("flags", [])],
        processes=int(cluster.num_processes),
        sharded=sharded,
    )


def estimate_memory(
    config: Any, policy: PreTrainedModel, disc: PreTrainedModel, prompt_tokens: int, launch: Launch
) -> dict[str, float]:
    """GiB per GPU by part (see the module docstring) and their total."""
    p_pol, p_disc = parameters(policy), parameters(disc)
    t_pol = lora_parameters(policy, config.lora_r, config.lora_target_modules) if config.lora_r else p_pol
    t_disc = (
        lora_parameters(disc, config.disc_lora_r, config.disc_lora_target_modules) if config.disc_lora_r else p_disc
    )
    weights = 2 * p_pol + 2 * p_disc
    if config.disc_likelihood and config.disc_likelihood_from == "reference":
        weights += 2 * p_disc
    if config.beta > 0 and not config.lora_r:
        weights += 2 * p_pol
    training = sum(16 * t if lora else 14 * t for t, lora in ((t_pol, config.lora_r), (t_disc, config.disc_lora_r)))
    shard = launch.processes if launch.sharded else 1

    b, c = config.per_device_train_batch_size, config.max_completion_length
    length = prompt_tokens + c
    pc, dc = policy.config, disc.config
    per_layer = 34 * b * length * pc.hidden_size
    if config.activation_checkpointing:
        layers = pc.num_hidden_layers * 2 * b * length * pc.hidden_size + per_layer
    else:
        layers = pc.num_hidden_layers * per_layer
    policy_step = layers + 10 * b * c * pc.vocab_size
    b_d = config.disc_batch_size
    disc_step = 34 * b_d * length * dc.hidden_size * dc.num_hidden_layers + 8 * b_d * length * dc.vocab_size
    parts = {
        "weights": weights / shard / GIB,
        "training_state": training / shard / GIB,
        "activations": max(policy_step, disc_step) / GIB,
        "vllm": config.vllm_gpu_memory_utilization * launch.gpu_gib if config.use_vllm else 0.0,
        "overhead": OVERHEAD_GIB,
    }
    parts = {k: round(v, 1) for k, v in parts.items()}
    parts["total"] = round(sum(parts.values()), 1)
    return parts


def check_recipe(index: dict[str, Any], index_file: Path, recipe: str, launch: Launch) -> dict[str, Any]:
    """Parse one recipe of the index (loaded from `index_file`) under one launch, build its models on the meta
    device, check the LoRA targets, estimate the memory; the result says whether it fits."""
    from rairl.trainers import airl  # a trainer config: imported here, so that reading the index stays light

    root = Path(index_file).parent
    # use_cpu: TrainingArguments refuses bf16 where no GPU is visible; the check builds nothing on a device
    config = parse_config(airl.Config, ["--config", str(root / recipe), *launch.flags, "--use_cpu", "true"])
    models = index["models"]
    for name in (config.model, config.disc_model):
        if name not in models:
            raise ValueError(f"{index_file}: no stored architecture for {name!r} (recipe {recipe}); add it to models")
    policy, disc = meta_model(root / models[config.model]), meta_model(root / models[config.disc_model])
    if policy.config.vocab_size != disc.config.vocab_size:
        raise ValueError(
            f"{recipe}: policy and discriminator vocabularies differ ({policy.config.vocab_size} vs "
            f"{disc.config.vocab_size}); the recipes pair models of one family"
        )
    memory = estimate_memory(config, policy, disc, int(index["prompt_tokens"][config.task]), launch)
    return {
        "recipe": recipe,
        "launch": launch.name,
        "gpu": launch.gpu,
        "processes": launch.processes,
        "policy": config.model,
        "discriminator": config.disc_model,
        "policy_params_b": round(parameters(policy) / 1e9, 2),
        "disc_params_b": round(parameters(disc) / 1e9, 2),
        "lora_r": config.lora_r,
        "memory_gib": memory,
        "fits": memory["total"] <= launch.gpu_gib,
    }


def check_all(index_file: Path) -> list[dict[str, Any]]:
    """Every recipe of the index under every launch."""
    index = yaml.safe_load(Path(index_file).read_text(encoding="utf-8"))
    root = Path(index_file).parent
    launches = [load_launch(root, name, values) for name, values in index["launches"].items()]
    return [check_recipe(index, index_file, recipe, launch) for recipe in index["recipes"] for launch in launches]


def format_checks(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"{'recipe':<22} {'launch':<16} {'weights':>8} {'train':>6} {'activ':>6} {'vllm':>5} {'total':>6} "
        f"{'GPU':<12} fits"
    ]
    for r in rows:
        m = r["memory_gib"]
        lines.append(
            f"{r['recipe']:<22} {r['launch']:<16} {m['weights']:>8} {m['training_state']:>6} {m['activations']:>6} "
            f"{m['vllm']:>5} {m['total']:>6} {r['gpu']:<12} {'yes' if r['fits'] else 'NO'}"
        )
    return "\n".join(lines) + "\n(GiB per GPU; estimate, see rairl/recipes.py)"
