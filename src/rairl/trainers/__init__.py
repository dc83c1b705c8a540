"""Trainers: `sft` (TRL SFTTrainer on the demonstrations); shared options and helpers in `common`."""
