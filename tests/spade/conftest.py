"""Fixtures of the spade tests."""
from __future__ import annotations

import torch

# The machine is shared and small: one intra-op thread avoids oversubscription (measured
# 5-10x slower with 2 threads when other processes compete for the 2 cores).
torch.set_num_threads(1)
