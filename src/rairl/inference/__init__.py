"""Inference with a policy and a learned reward: sampling, scoring, reranking, localisation."""

from rairl.inference.sampling import generate, sample_rows

__all__ = ["generate", "sample_rows"]
