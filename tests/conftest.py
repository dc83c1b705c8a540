"""Shared test settings: one torch thread (tiny models gain nothing from more, and several busy-waiting
OpenMP threads on a loaded 2-core machine slow each other down by orders of magnitude)."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # inherited by subprocess smoke tests

import torch  # noqa: E402

torch.set_num_threads(1)
