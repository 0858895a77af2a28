"""The command line: list, inspect and the main job, run as a user would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from vlm_adapters.cli import main
from vlm_adapters.registry import get_adapter

ROOT = Path(__file__).resolve().parents[1]


def test_list_json_shows_built_ins_from_entry_points(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    for name, kind in [("qwen2_vl", "dynamic"), ("qwen2_5_vl", "dynamic"), ("deepseek_vl", "fixed")]:
        assert rows[name]["status"] == "loaded"
        assert rows[name]["spec_kind"] == kind
        assert rows[name]["distribution"] == "vlm-adapters" and rows[name]["version"]


def test_list_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "deepseek_vl" in out and "loaded" in out


def test_inspect_gives_the_geometry_of_one_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "qwen2_5_vl", "--image-size", "427x640", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    spec = get_adapter("qwen2_5_vl").from_tiny().spec
    assert data["spec"]["kind"] == "dynamic" and data["spec"]["patch_size"] == spec.patch_size
    g = spec.geometry((427, 640))
    assert data["geometry"]["token_grid"] == list(g.token_grid)
    assert data["geometry"]["num_image_tokens"] == g.num_image_tokens


def test_inspect_text_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "deepseek_vl", "--image-size", "480x640"]) == 0
    out = capsys.readouterr().out
    assert "token_grid" in out and "padding" in out


def test_unknown_adapter_is_a_clean_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "no_such_backbone"]) == 2
    assert "no adapter named 'no_such_backbone'" in capsys.readouterr().err


@pytest.mark.parametrize("backbone", ["deepseek_vl", "qwen2_5_vl"])
def test_run_writes_overlays_summary_and_tensors(backbone: str, tmp_path: Path) -> None:
    image = ROOT / "examples" / "shapes.png"
    code = main(
        [
            "run",
            "--backbone",
            backbone,
            "--image",
            str(image),
            str(image),
            "--text",
            "the red circle",
            "--out",
            str(tmp_path),
            "--layers",
            "0,-1",
        ]
    )
    assert code == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["backbone"] == backbone and len(summary["images"]) == 2
    first = summary["images"][0]
    folder = tmp_path / first["folder"]
    assert (folder / "overlay_all.png").is_file()
    assert [o["token"] for o in first["overlays"]] == first["query_tokens"]
    assert all((folder / o["file"]).is_file() for o in first["overlays"])
    assert first["geometry"]["original_size"] == [427, 640]
    tensors = load_file(str(tmp_path / "tensors.safetensors"))
    att = tensors["image0.attention"]
    assert list(att.shape) == first["shapes"]["attention"]
    assert att.shape[0] == 2 and list(att.shape[-2:]) == first["geometry"]["token_grid"]
    assert att.shape[2] == len(first["query_tokens"])


def test_list_shows_a_broken_plugin_and_keeps_going(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from vlm_adapters.registry import reset_registry

    info = tmp_path / "broken_thing-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-thing\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text("[vlm_adapters]\nbroken = no_such_module_here\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reset_registry()
    try:
        assert main(["list"]) == 0
        out = capsys.readouterr().out
        broken = next(line for line in out.splitlines() if line.startswith("broken"))
        assert "broken-thing" in broken and "failed: ModuleNotFoundError" in broken
        assert any(line.startswith("qwen2_vl") and line.rstrip().endswith("loaded") for line in out.splitlines())
    finally:
        reset_registry()


def test_run_words_pick_phrases(tmp_path: Path) -> None:
    image = ROOT / "examples" / "shapes.png"
    args = ["run", "--backbone", "deepseek_vl", "--image", str(image), "--text", "the red circle"]
    assert main([*args, "--out", str(tmp_path), "--words", "red circle", "the", "--heads", "0"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    overlays = summary["images"][0]["overlays"]
    assert [o["token"] for o in overlays] == ["red circle", "the"]
    assert overlays[0]["query"] == [1, 2] and overlays[1]["query"] == [0]


@pytest.mark.parametrize(
    "extra", [["--heads", "0,99"], ["--layers", "0,7"], ["--layers", "1,-1"], ["--words", "giraffe"]]
)
def test_run_refuses_what_the_model_or_text_lacks(
    extra: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = ROOT / "examples" / "shapes.png"
    args = ["run", "--backbone", "deepseek_vl", "--image", str(image), "--text", "the red circle"]
    assert main([*args, "--out", str(tmp_path), *extra]) == 2
    err = capsys.readouterr().err
    assert "found" in err and "expected" in err and "Fix:" in err
