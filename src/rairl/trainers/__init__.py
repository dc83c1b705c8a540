"""Trainers: `sft` (TRL SFTTrainer), `grpo` (TRL GRPOTrainer, verifier reward), `airl` (R-AIRL, a GRPOTrainer
subclass); shared options and helpers in `common`."""
