"""Data-parallel extraction on two CPU processes, under torchrun and under accelerate launch.

Each launch must give the single-process output: the same samples in the same order, the same
tensors, with one set of shards per rank and one merged index.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vlm_adapters.extract.distributed import Ranks
from vlm_adapters.extract.job import extract
from vlm_adapters.features import ExtractedFeatures
from vlm_adapters.pipeline import FrozenLMM
from vlm_adapters.testing import smooth_image

COMMAND = ["-m", "vlm_adapters", "extract", "--backbone", "qwen2_5_vl", "--dtype", "float32", "--no-progress"]


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("manifest")
    rows = []
    for i in range(5):
        smooth_image(64 + 8 * i, 96, seed=i).save(folder / f"img{i}.png")
        texts = ["a red cat", "the blue dog on the left", "two birds"][: 1 + i % 3]
        rows += [{"id": f"p{i}-{j}", "image": f"img{i}.png", "text": t} for j, t in enumerate(texts)]
    rows.append({"id": "bad", "image": "missing.png", "text": "a cat"})
    path = folder / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def single(manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("single") / "out"
    extract(manifest, out, FrozenLMM.from_tiny("qwen2_5_vl"), dtype="float32", progress=False, ranks=Ranks())
    return out


def assert_same_output(got: Path, want: Path) -> None:
    def records(folder: Path) -> list[dict[str, object]]:
        rows = [json.loads(line) for line in (folder / "index.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if k not in ("shard", "rank")} for r in rows]

    assert records(got) == records(want)
    a, b = ExtractedFeatures(got), ExtractedFeatures(want)
    assert len(a) == len(b) > 0
    for i in range(len(b)):
        for key in ("hidden", "object_ids", "token_ids"):
            torch.testing.assert_close(a[i][key], b[i][key], rtol=0, atol=1e-5)
        torch.testing.assert_close(a[i]["maps"][0][0], b[i]["maps"][0][0], rtol=0, atol=1e-5)
    assert json.loads((got / "run.json").read_text())["status"] == "complete"


def launch(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    done = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


@pytest.mark.slow
def test_torchrun_two_processes_equal_one(manifest: Path, single: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    done = launch([*launcher, *COMMAND, "--manifest", str(manifest), "--out", str(out)])
    assert "rank 0/2" in done.stdout and "rank 1/2" in done.stdout
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["r000-00000.safetensors", "r001-00000.safetensors"]
    assert_same_output(out, single)
    assert json.loads((out / "run.json").read_text())["processes"] == {"world_size": 2, "launcher": "torchrun"}


@pytest.mark.slow
def test_accelerate_launch_two_processes_equal_one(manifest: Path, single: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    launcher = ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1"]
    launcher += ["--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0"]
    launch([*launcher, *COMMAND, "--manifest", str(manifest), "--out", str(out)])
    assert_same_output(out, single)
    assert json.loads((out / "run.json").read_text())["processes"] == {"world_size": 2, "launcher": "accelerate"}
