"""Tests never touch the network: the hub is switched off before transformers is imported."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

# Tiny models: one thread avoids thread-pool stalls when the 2 cores are shared.
torch.set_num_threads(1)
