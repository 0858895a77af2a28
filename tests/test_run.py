"""``vlm-adapters run``: what it writes, that its maps are the pipeline's, and how it treats its folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from vlm_adapters.cli import main
from vlm_adapters.phrases import locate_text
from vlm_adapters.pipeline import FrozenLMM
from vlm_adapters.run import DEFAULT_PROMPT
from vlm_adapters.spec import spec_from_json

ROOT = Path(__file__).resolve().parents[1]
SHAPES = ROOT / "examples" / "shapes.png"
IMAGE_FILES = {"overlay_all.png", "contact_sheet.png", "tensors.safetensors", "image.json"}


def run(*args: str) -> int:
    return main(["run", *args])


@pytest.mark.parametrize("backbone", ["deepseek_vl", "qwen2_5_vl"])
def test_run_writes_folders_summary_and_the_pipelines_maps(backbone: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    text = "the red circle"
    assert run("--backbone", backbone, "--image", str(SHAPES), str(SHAPES), "--text", text, "--out", str(out),
               "--layers", "0,-1") == 0  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["backbone"] == backbone and summary["random_weights"]
    assert summary["arguments"]["text"] == text and summary["layers"] == [0, 1]
    assert [w["text"] for w in summary["words"]] == ["the", "red", "circle"]
    assert sorted(p.name for p in out.iterdir()) == ["000_shapes", "001_shapes", "summary.json"]
    first = summary["images"][0]
    folder = out / first["folder"]
    word_files = {o["file"] for o in first["overlays"]}
    assert {p.name for p in folder.iterdir()} == IMAGE_FILES | word_files
    assert json.loads((folder / "image.json").read_text()) == first
    for name in ["overlay_all.png", "contact_sheet.png", *word_files]:
        with Image.open(folder / name) as png:
            assert png.format == "PNG" and png.width > 400

    # the tensors are what the pipeline gives for the same image and prompt
    lmm = FrozenLMM.from_tiny(backbone)
    image = Image.open(SHAPES).convert("RGB")
    batch = lmm.prepare([image], [lmm.adapter.format_prompt(DEFAULT_PROMPT, answer=text)])
    located = locate_text(lmm.adapter.processor.tokenizer, batch.input_ids[0], text)
    want = lmm(batch, layers=[0, -1], queries=[located.positions])[0]
    tensors = load_file(str(folder / "tensors.safetensors"))
    torch.testing.assert_close(tensors["attention"], want.attention[0], rtol=0, atol=1e-6)
    assert want.hidden_states is not None
    torch.testing.assert_close(tensors["hidden_states"], want.hidden_states.float(), rtol=0, atol=1e-6)
    assert torch.equal(tensors["query_positions"], want.query_positions)
    per_query = want.attention[0].mean(dim=(0, 1))
    for k, overlay in enumerate(first["overlays"]):
        torch.testing.assert_close(tensors["word_maps"][k], per_query[overlay["tokens"]].mean(0))
    assert list(tensors["attention"].shape) == first["shapes"]["attention"]
    assert list(tensors["attention"].shape[-2:]) == first["geometry"]["token_grid"]
    assert first["geometry"]["original_size"] == [427, 640]

    with safe_open(str(folder / "tensors.safetensors"), "pt") as f:
        meta = f.metadata()
    assert meta["backbone"] == backbone and meta["text"] == text
    assert spec_from_json(meta["spec"]) == lmm.adapter.spec
    assert json.loads(meta["geometry"]) == first["geometry"]
    assert json.loads(meta["layers"]) == [0, 1] and json.loads(meta["heads"]) == list(range(want.attention[0].shape[1]))
    assert [w["word"] for w in json.loads(meta["words"])] == ["the", "red", "circle"]


def test_words_pick_occurrences_spans_and_heads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = "the red circle and the red square"
    args = ["--backbone", "deepseek_vl", "--image", str(SHAPES), "--text", text, "--heads", "1"]
    assert run(*args, "--out", str(tmp_path / "a"), "--words", "red", "red@2", "19:26") == 0
    warning = capsys.readouterr().err
    assert "'red' occurs 2 times" in warning and "red@2" in warning
    record = json.loads((tmp_path / "a" / "summary.json").read_text())["images"][0]
    first, second, span = record["overlays"]
    assert [first["word"], second["word"], span["word"]] == ["red", "red", "the red"]
    assert first["span"] == [4, 7] and second["span"] == [23, 26] and span["span"] == [19, 26]
    assert second["tokens"][0] > first["tokens"][-1]
    assert "".join(record["query_tokens"][i] for i in second["tokens"]) == " red"
    tensors = load_file(str(tmp_path / "a" / record["folder"] / "tensors.safetensors"))
    assert tensors["attention"].shape[1] == 1  # --heads 1 keeps one head


def test_the_checkpoint_names_its_backbone(tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert (
        run("--model", str(tiny_checkpoint), "--image", str(SHAPES), "--text", "a red circle", "--out", str(out)) == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["backbone"] == "deepseek_vl" and summary["model"] == str(tiny_checkpoint)
    assert not summary["random_weights"] and summary["dtype"] == "float32" and summary["device"] == "cpu"


def test_a_failing_image_is_recorded_and_the_others_go_on(tmp_path: Path) -> None:
    thin = tmp_path / "thin.png"
    Image.fromarray(np.full((2, 600, 3), 200, dtype=np.uint8)).save(thin)  # aspect ratio 300 > Qwen's 200
    out = tmp_path / "out"
    code = run("--backbone", "qwen2_5_vl", "--image", str(thin), str(SHAPES), "--text", "a circle", "--out", str(out))
    assert code == 1
    summary = json.loads((out / "summary.json").read_text())
    bad, good = summary["images"]
    assert (
        bad["status"] == "failed" and bad["error"]["type"] == "ImageShapeError" and "ratio" in bad["error"]["message"]
    )
    assert good["status"] == "ok" and (out / good["folder"] / "overlay_all.png").is_file()
    assert sorted(p.name for p in out.iterdir()) == ["001_shapes", "summary.json"]


def test_resume_finishes_and_overwrite_replaces(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    args = ["--backbone", "deepseek_vl", "--image", str(SHAPES), "--text", "a red circle", "--out", str(out)]
    assert run(*args) == 0
    record = out / "000_shapes" / "image.json"
    before = record.stat().st_mtime_ns
    assert run(*args) == 2 and "--out is not empty" in capsys.readouterr().err
    assert run(*args, "--resume") == 0  # nothing left to do: the finished image is kept as it is
    assert record.stat().st_mtime_ns == before
    assert run(*args, "--resume", "--heads", "0") == 2
    assert "heads: None -> [0]" in capsys.readouterr().err
    assert run(*args, "--overwrite", "--words", "circle") == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [w["text"] for w in summary["words"]] == ["circle"] and record.stat().st_mtime_ns != before


def test_ctrl_c_leaves_finished_images_and_resume_completes_them(tmp_path: Path) -> None:
    out = tmp_path / "out"
    images = [str(SHAPES)] * 6
    args = ["--backbone", "deepseek_vl", "--image", *images, "--text", "a red circle", "--out", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vlm_adapters", "run", *args], stderr=subprocess.PIPE, text=True, env=env
    )
    deadline = time.monotonic() + 600
    while not (out / "000_shapes").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    finished = {r["folder"] for r in summary["images"]}
    on_disk = {p.name for p in out.iterdir()} - {"summary.json"}
    assert finished == on_disk and 1 <= len(finished) < 6  # no partial folder, no temporary file
    for name in finished:
        assert {p.name for p in (out / name).iterdir()} >= IMAGE_FILES

    assert run(*args, "--resume") == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and [r["index"] for r in summary["images"]] == list(range(6))
    assert {r["folder"] for r in summary["images"]} >= finished
