"""Every bad input of ``run`` is refused before the model loads: exit 2, one line on stderr, no traceback,
no output folder left behind (each case in its own process, as a user runs it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHAPES = ROOT / "examples" / "shapes.png"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("inputs")
    not_image = folder / "notes.png"
    not_image.write_text("this is text, not a PNG")
    truncated = folder / "truncated.png"
    truncated.write_bytes(SHAPES.read_bytes()[: SHAPES.stat().st_size // 2])
    used = folder / "used"
    used.mkdir()
    (used / "keep.txt").write_text("somebody's file")
    return {"not_image": not_image, "truncated": truncated, "used": used, "missing": folder / "nope.png"}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "vlm_adapters", "run", *args], capture_output=True, text=True, env=env, timeout=600
    )


BASE = ["--backbone", "deepseek_vl", "--text", "the red circle"]
CASES = {
    "missing image": (["--image", "{missing}"], "ImageFileError", "no such file"),
    "not an image": (["--image", "{not_image}"], "ImageFileError", "does not decode"),
    "truncated image": (["--image", "{truncated}"], "ImageFileError", "does not decode"),
    "empty text": (["--image", "{shapes}", "--text", " "], "OptionError", "--text is empty"),
    "word not in text": (["--image", "{shapes}", "--words", "giraffe"], "OptionError", "'giraffe' is not in the text"),
    "occurrence missing": (["--image", "{shapes}", "--words", "red@2"], "OptionError", "no occurrence 2"),
    "span outside text": (["--image", "{shapes}", "--words", "3:99"], "OptionError", "character span"),
    "layer missing": (["--image", "{shapes}", "--layers", "0,7"], "OptionError", "--layers does not fit"),
    "layer twice": (["--image", "{shapes}", "--layers", "1,-1"], "OptionError", "--layers does not fit"),
    "head missing": (["--image", "{shapes}", "--heads", "0,99"], "OptionError", "--heads does not fit"),
    "no such GPU": (["--image", "{shapes}", "--device", "cuda:99"], "OptionError", "not available"),
    "bad device": (["--image", "{shapes}", "--device", "gpu9"], "OptionError", "not a device"),
    "bad dtype": (["--image", "{shapes}", "--dtype", "float8"], "", "invalid choice"),
    "bad layers syntax": (["--image", "{shapes}", "--layers", "a,b"], "", "comma-separated integers"),
    "bad colour map": (["--image", "{shapes}", "--cmap", "rainbowish"], "OptionError", "colour map"),
    "bad alpha": (["--image", "{shapes}", "--alpha", "1.5"], "OptionError", "--alpha"),
    "unknown backbone": (["--image", "{shapes}", "--backbone", "nope"], "AdapterNotFoundError", "no adapter named"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_and_leaves_nothing(case: str, files: dict[str, Path], tmp_path: Path) -> None:
    extra, error, words = CASES[case]
    out = tmp_path / "out"
    paths = {k: str(v) for k, v in files.items()} | {"shapes": str(SHAPES)}
    done = run_cli(*BASE, *[a.format(**paths) for a in extra], "--out", str(out))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr and error in lines[0] and words in lines[0], lines[0]
    assert not out.exists()


def test_a_folder_in_use_is_left_alone(files: dict[str, Path]) -> None:
    for flags in ([], ["--overwrite"], ["--resume"]):
        done = run_cli(*BASE, "--image", str(SHAPES), "--out", str(files["used"]), *flags)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "OutputFolderError" in done.stderr
        assert sorted(p.name for p in files["used"].iterdir()) == ["keep.txt"]


def test_remote_code_checkpoint_and_mismatched_backbone(
    multi_modality_checkpoint: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    done = run_cli("--model", str(multi_modality_checkpoint), "--image", str(SHAPES), "--text", "a", "--out", str(out))
    assert done.returncode == 2 and "deepseek-community/deepseek-vl-1.3b-chat" in done.stderr
    done = run_cli(
        "--backbone",
        "qwen2_5_vl",
        "--model",
        str(tiny_checkpoint),
        "--image",
        str(SHAPES),
        "--text",
        "a",
        "--out",
        str(out),
    )
    assert done.returncode == 2 and "--backbone qwen2_5_vl does not serve" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not out.exists()
    done = run_cli("--image", str(SHAPES), "--text", "a", "--out", str(out))
    assert done.returncode == 2 and "neither --backbone nor --model" in done.stderr and not out.exists()
