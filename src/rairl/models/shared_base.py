"""One frozen base LM in three roles: the policy, the discriminator's backbone and the frozen reference (issue 21).

With LoRA on both sides, R-AIRL needs three views of one set of base weights W:

    policy          W + B_π A_π          (peft adapter "default", trained by TRL's optimiser)
    discriminator   W + B_D A_D          (peft adapter "discriminator", trained by the discriminator's optimiser)
    reference       W                    (adapters disabled: ℓ_t = log p_W(y_t | x, y_<t), and TRL's KL reference)

`SharedBase` adds the second adapter to the policy's `PeftModel` and switches between the roles around a forward
pass (`role`), so one copy of W serves all three: the discriminator's backbone *is* the policy's decoder module.
peft's `set_adapter` (also run when adapters are re-enabled) freezes the inactive adapter, and a flag flipped between
a forward pass and its backward drops that parameter's gradient, so `role` leaves both adapters trainable on the way
in and out; each optimiser holds only its own (`parameters`). One process only: under DDP the
policy's wrapper would own the discriminator's adapter too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from transformers import PreTrainedModel

from rairl.models.factory import lora_targets

DISC_ADAPTER = "discriminator"
ROLES = ("policy", "discriminator", "reference")


class SharedBase:
    """The policy's `PeftModel` with a second LoRA adapter for the discriminator."""

    def __init__(self, policy, r: int, alpha: int, target_modules: list[str] | str = "all-linear"):
        from peft import LoraConfig, PeftModel

        if not isinstance(policy, PeftModel):
            raise ValueError("a shared base needs a LoRA policy (--lora_r > 0): the base stays frozen under adapters")
        self.policy = policy
        self.policy_adapter = policy.active_adapter
        policy.add_adapter(DISC_ADAPTER, LoraConfig(r=r, lora_alpha=alpha, target_modules=lora_targets(target_modules)))
        self.trainable()

    @property
    def lm(self) -> PreTrainedModel:
        """The causal LM with the adapters injected (what every role runs)."""
        return self.policy.get_base_model()

    def parameters(self, adapter: str) -> list[torch.nn.Parameter]:
        """The LoRA parameters of one adapter ("default" is the policy's, `DISC_ADAPTER` the discriminator's)."""
        return [p for name, p in self.policy.named_parameters() if f".{adapter}." in name and "lora_" in name]

    def base_parameters(self) -> list[torch.nn.Parameter]:
        """W: every parameter that is not an adapter's."""
        return [p for name, p in self.policy.named_parameters() if "lora_" not in name]

    @contextlib.contextmanager
    def role(self, role: str) -> Iterator[None]:
        """Run the block as `role`: "policy", "discriminator" (its adapter active) or "reference" (none)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        previous = self.policy.active_adapter
        try:
            if role == "reference":
                with self.policy.disable_adapter():
                    yield
                return
            self.policy.set_adapter(DISC_ADAPTER if role == "discriminator" else self.policy_adapter)
            self.trainable()
            yield
        finally:
            if self.policy.active_adapter != previous:
                self.policy.set_adapter(previous)
            self.trainable()

    def trainable(self) -> None:
        """Both adapters trainable again (peft's `set_adapter`, also run by `disable_adapter` on exit, freezes the
        inactive one; TRL's KL reference pass runs it too)."""
        for p in self.parameters(self.policy_adapter) + self.parameters(DISC_ADAPTER):
            p.requires_grad_(True)

    def merged(self, adapter: str | None) -> PreTrainedModel:
        """A standalone copy of the causal LM: W with `adapter` merged in, or W alone (None)."""
        import copy

        model = copy.deepcopy(self.policy)
        if adapter is None:
            return model.unload()
        return model.merge_and_unload(adapter_names=[adapter])
