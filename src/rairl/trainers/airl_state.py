"""What an R-AIRL checkpoint holds beside TRL's (policy, its optimizer and scheduler, RNG states): the
discriminator, its optimizer, the replay buffer and the perturbation RNG, in `checkpoint-N/airl_state/`,
written atomically (a temporary folder renamed into place) in safetensors. The `discriminator/` folder loads on its
own (`Discriminator.from_pretrained`); a discriminator with LoRA adapters saves it merged, so its trainable tensors
(adapters and head, by parameter name) are also written as they are and restored from there.
"""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file, save_file

from rairl.discriminator import Discriminator
from rairl.io import atomic_dir

STATE_DIR = "airl_state"
TRAINABLE_FILE = "trainable.safetensors"


def save(trainer, checkpoint: Path) -> None:
    with atomic_dir(checkpoint / STATE_DIR) as tmp:
        trainer.reward_model.save_pretrained(tmp / "discriminator")
        disc = trainer.reward_model.discriminator
        if disc.has_lora:
            trainable = {k: p.detach().contiguous() for k, p in disc.named_trainable()}
            save_file(trainable, str(tmp / TRAINABLE_FILE))
        if trainer.updater is not None:
            trainer.updater.save(tmp)


def load(trainer, checkpoint: Path) -> None:
    folder = checkpoint / STATE_DIR
    if not folder.is_dir():
        raise FileNotFoundError(f"{checkpoint}: no {STATE_DIR}/ (the discriminator's state); not an R-AIRL checkpoint")
    disc = trainer.reward_model.discriminator
    if disc.has_lora:  # the frozen base is rebuilt as it was; the adapters and the head come back by name
        trainable = load_file(str(folder / TRAINABLE_FILE))
        expected = {k for k, _ in disc.named_trainable()}
        if set(trainable) != expected:
            raise ValueError(
                f"{folder / TRAINABLE_FILE}: holds {len(trainable)} tensors that do not match this "
                f"run's {len(expected)} trainable ones (another --disc_lora_r or model?)"
            )
        disc.load_state_dict(trainable, strict=False)
    else:
        saved = Discriminator.from_pretrained(folder / "discriminator")
        disc.load_state_dict(saved.state_dict())  # in place: wrappers stay valid
    if trainer.updater is not None:
        trainer.updater.load(folder)
