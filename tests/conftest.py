"""Tests never touch the network: the hub is switched off before transformers is imported."""

import json
import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

# Tiny models: one thread avoids thread-pool stalls when the 2 cores are shared.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def own_inspect_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's inspect cache starts empty and is not the user's (subprocesses inherit it)."""
    folder = tmp_path_factory.mktemp("inspect-cache")
    monkeypatch.setenv("VLM_ADAPTERS_CACHE", str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny DeepSeek-VL saved as a checkpoint folder: loads like a downloaded one."""
    from vlm_adapters.registry import get_adapter
    from vlm_adapters.tiny import save_tiny_checkpoint

    return save_tiny_checkpoint(get_adapter("deepseek_vl").from_tiny(), tmp_path_factory.mktemp("tiny-deepseek"))


@pytest.fixture(scope="session")
def multi_modality_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint folder in the original DeepSeek-VL remote-code format (its config.json only)."""
    folder = tmp_path_factory.mktemp("deepseek-remote-code")
    config = {"model_type": "multi_modality", "architectures": ["MultiModalityCausalLM"]}
    (folder / "config.json").write_text(json.dumps(config))
    return folder
