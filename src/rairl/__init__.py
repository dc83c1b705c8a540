"""rairl: reasoning rewards learned from expert demonstrations with adversarial inverse RL (R-AIRL).

The learned reward is used three ways: to train a policy with GRPO, to rerank sampled answers (best-of-N),
and to localise the first wrong step of a reasoning trace.
"""

__version__ = "0.1.0"
