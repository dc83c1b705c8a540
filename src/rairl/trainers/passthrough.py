"""Expert passthrough (DESIGN §1.5): the expert trace of each prompt joins its group as one more training
sample. Its advantage standardises its own reward-to-go R_t by the statistics of the policy's G samples,
A_t = (R_t − μ_g) / σ_g (`rairl.rewards.advantages`; 0 when the group's samples cannot be told apart). With a
verifier's outcome reward, the expert's r_T gets the same bonus as a policy sample (weight · its verified
correctness).
"""

from __future__ import annotations

import torch
from trl.trainer.utils import pad

from rairl.rewards.advantages import add_outcome_reward, group_stats, reward_to_go, standardise
from rairl.tasks import Example


def append_experts(
    trainer, out: dict, examples: list[Example], all_rewards: torch.Tensor, all_mask: torch.Tensor
) -> dict:
    """Append one expert row per group of this process's slice of the batch.

    Every process appends the same number of rows (TRL gathers per-row metrics, which needs equal row counts):
    the config requires `per_device_train_batch_size` to be a multiple of `num_generations`, so no group straddles
    two processes and each slice starts a group.
    """
    for key in ("old_per_token_logps", "ref_per_token_logps", "sampling_per_token_logps", "importance_sampling_ratio"):
        if key in out:
            raise ValueError(
                f"expert_passthrough does not support batches carrying {key!r}; use beta=0, "
                "gradient_accumulation_steps=1 and no vLLM"
            )
    G, n = trainer.num_generations, len(examples)
    first = trainer.accelerator.process_index * n
    rows = [i for i in range(n) if (first + i) % G == 0]
    outcome, gamma = trainer.reward_model.settings.granularity_entry.outcome, trainer.airl.advantage_discount
    # on CPU, beside the experts' rewards
    stats = group_stats(reward_to_go(all_rewards.cpu(), all_mask.cpu(), gamma, outcome=outcome), all_mask.cpu(), G)
    groups = torch.tensor([(first + i) // G for i in rows])
    tok, device = trainer.processing_class, out["completion_ids"].device
    experts = [examples[i].expert for i in rows]
    ids = [tok(e, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for e in experts]
    prompt_ids = [out["prompt_ids"][i][out["prompt_mask"][i].bool()].tolist() for i in rows]
    batch, _ = trainer.policy_batch([examples[i] for i in rows], prompt_ids, ids)
    rewards = trainer.completion_rewards(batch, ids, max(len(x) for x in ids)).cpu()  # (E, C_e)
    mask = pad([torch.ones(len(x), dtype=torch.bool) for x in ids], padding_value=False, padding_side="right")
    if (
        trainer.airl.outcome_reward_weight
    ):  # the policy's r_T carry the verifier's bonus in μ_g, σ_g: so does the expert
        verified = torch.tensor([float(trainer.task.verify(examples[i].expert, examples[i])) for i in rows])
        rewards = add_outcome_reward(rewards, mask, verified, trainer.airl.outcome_reward_weight)
    advantages = standardise(reward_to_go(rewards, mask, gamma, outcome=outcome), mask, stats, groups)

    def cat_right(old: torch.Tensor, new: list[torch.Tensor], value) -> torch.Tensor:
        rows_ = [r for r in old] + [x.to(old.dtype).to(device) for x in new]
        return pad(rows_, padding_value=value, padding_side="right")

    def cat_left(old: torch.Tensor, new: list[torch.Tensor], value) -> torch.Tensor:
        rows_ = [r for r in old] + [x.to(old.dtype).to(device) for x in new]
        return pad(rows_, padding_value=value, padding_side="left")

    out = dict(out)
    out["prompt_ids"] = cat_left(out["prompt_ids"], [torch.tensor(p) for p in prompt_ids], tok.pad_token_id)
    out["prompt_mask"] = cat_left(out["prompt_mask"], [torch.ones(len(p)) for p in prompt_ids], 0)
    out["completion_ids"] = cat_right(out["completion_ids"], [torch.tensor(x) for x in ids], tok.pad_token_id)
    out["completion_mask"] = cat_right(out["completion_mask"], [torch.ones(len(x)) for x in ids], 0)
    out["advantages"] = cat_right(out["advantages"], [a[: len(x)] for a, x in zip(advantages, ids)], 0.0)
    added = torch.tensor(sum(len(x) for x in ids), device=device)
    out["num_items_in_batch"] = out["num_items_in_batch"] + trainer.accelerator.gather(added).sum()
    return out
