"""``vlm-adapters extract`` as a user runs it: checked inputs, one-line errors, resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from vlm_adapters.cli import main
from vlm_adapters.extract.job import extract
from vlm_adapters.features import ExtractedFeatures
from vlm_adapters.pipeline import FrozenLMM
from vlm_adapters.testing import smooth_image

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "extract" / "manifest.jsonl"


@pytest.fixture
def no_model_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a model loads: these inputs must be refused before that."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded before the inputs were checked")

    monkeypatch.setattr(FrozenLMM, "from_tiny", refuse)
    monkeypatch.setattr(FrozenLMM, "from_pretrained", refuse)


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err and "\n" not in err, err
    return err


def test_readme_example(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["extract", "--backbone", "qwen2_5_vl", "--manifest", str(EXAMPLE), "--out", str(tmp_path / "out")]
    assert main([*args, "--no-progress"]) == 0
    assert "6 sample(s) extracted, 0 refused" in capsys.readouterr().out
    features = ExtractedFeatures(tmp_path / "out")
    assert [s["id"] for s in (features[i] for i in range(len(features)))] == [
        json.loads(line)["id"] for line in EXAMPLE.read_text().splitlines()
    ]
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["arguments"]["manifest"] == str(EXAMPLE) and run["settings"]["dtype"] == "float16"


@pytest.mark.usefixtures("no_model_load")
def test_inputs_are_checked_before_the_model_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    base = ["extract", "--backbone", "qwen2_5_vl", "--out", str(out), "--manifest"]
    no_columns = tmp_path / "rows.jsonl"
    no_columns.write_text(json.dumps({"image": "a.png", "caption": "a cat"}) + "\n")
    (tmp_path / "rows.txt").write_text("id,image,text\n")
    cases = [
        ([*base, str(tmp_path / "missing.jsonl")], "ManifestError", "manifest file not found"),
        ([*base, str(tmp_path / "rows.txt")], "ManifestError", "unknown manifest format"),
        ([*base, str(no_columns)], "ManifestError", "lacks columns"),
        ([*base, str(EXAMPLE), "--layers", "0,7"], "VisionInputError", "--layers does not fit"),
        ([*base, str(EXAMPLE), "--heads", "0,0"], "VisionInputError", "heads do not fit"),
        (["extract", "--manifest", str(EXAMPLE), "--out", str(out)], "VisionInputError", "no model to run"),
    ]
    for argv, _kind, words in cases:
        assert main(argv) == 2, argv
        err = one_line_error(capsys)
        assert words in err and "Fix:" in err, err
    assert not out.exists()
    (out / "stray").mkdir(parents=True)
    assert main([*base, str(EXAMPLE)]) == 2
    assert "holds no extraction" in one_line_error(capsys)


def test_used_folders_need_resume_and_the_same_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    args = ["extract", "--backbone", "qwen2_5_vl", "--manifest", str(EXAMPLE), "--out", str(out), "--no-progress"]
    assert main([*args, "--limit", "2"]) == 0
    assert main(args) == 2
    assert "already holds an extraction" in one_line_error(capsys)
    assert main([*args, "--resume", "--layers", "0"]) == 2
    assert "layers: None -> [0]" in one_line_error(capsys)
    assert main([*args, "--resume"]) == 0
    assert "4 sample(s) extracted, 0 refused, 2 already done" in capsys.readouterr().out
    assert len(ExtractedFeatures(out)) == 6


def test_dataset_folder_and_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import datasets

    rows = [{"id": f"d{i}", "image": smooth_image(64, 96, seed=i), "text": "a red cat"} for i in range(3)]
    datasets.DatasetDict({"val": datasets.Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "ds"))
    capsys.readouterr()
    args = ["extract", "--backbone", "deepseek_vl", "--dataset", str(tmp_path / "ds"), "--out", str(tmp_path / "out")]
    assert main([*args, "--no-progress"]) == 2
    assert "choose a split" in one_line_error(capsys)
    assert main([*args, "--split", "val", "--limit", "2", "--no-progress"]) == 0
    features = ExtractedFeatures(tmp_path / "out")
    assert [features[i]["id"] for i in range(len(features))] == ["d0", "d1"]
    assert features[0]["maps"][0][0].shape[-2:] == (24, 24)


def wait_for_lines(path: Path, count: int, process: subprocess.Popen[str], timeout: float = 300) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = path.read_text().count("\n") if path.exists() else 0
        if lines >= count:
            return lines
        if process.poll() is not None:
            raise AssertionError(f"the run ended before it could be killed: {process.communicate()}")
        time.sleep(0.01)
    raise AssertionError("no progress")


@pytest.mark.slow
def test_a_killed_run_resumes_and_loses_nothing(tmp_path: Path) -> None:
    """SIGKILL a run midway (and tear its index's last line), resume it: the result equals an
    uninterrupted run, every sample once, nothing half-written left behind."""
    rows = []
    for i in range(20):
        smooth_image(64 + 4 * i, 96, seed=i).save(tmp_path / f"img{i}.png")
        texts = ["a cat", "the red dog"]
        rows += [{"id": f"k{i}-{j}", "image": f"img{i}.png", "text": text} for j, text in enumerate(texts)]
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "vlm_adapters", "extract", "--backbone", "qwen2_5_vl", "--manifest", str(manifest)]
    command += ["--out", str(out), "--dtype", "float32", "--shard-size", "3KB", "--batch-size", "1", "--no-progress"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    index = out / "index" / "r000.jsonl"
    try:
        wait_for_lines(index, 6, process)
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate()
    done_before = index.read_text().count("\n")
    assert 0 < done_before < len(rows)
    assert not (out / "index.jsonl").exists()
    assert json.loads((out / "run.json").read_text())["status"] == "running"
    with open(index, "a") as f:  # as if the kill had hit the middle of an index write
        f.write('{"position": 39, "id": "k19-1", "sta')
    resumed = subprocess.run([*command, "--resume"], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"{done_before} already done" in resumed.stdout
    assert not list(out.rglob("*.tmp"))

    reference = tmp_path / "reference"
    extract(manifest, reference, FrozenLMM.from_tiny("qwen2_5_vl"), dtype="float32", progress=False)
    got, want = ExtractedFeatures(out), ExtractedFeatures(reference)
    assert [got[i]["id"] for i in range(len(got))] == [r["id"] for r in rows]
    for i in range(len(want)):
        for key in ("hidden", "object_ids", "token_ids"):
            torch.testing.assert_close(got[i][key], want[i][key], rtol=0, atol=1e-5)
        torch.testing.assert_close(got[i]["maps"][0][0], want[i]["maps"][0][0], rtol=0, atol=1e-5)
    assert json.loads((out / "run.json").read_text())["counts"] == {"ok": len(rows), "error": 0}
