"""``vlm-adapters run`` and ``inspect`` on the multi-view backbones: one overlay per image on its own
pixels (views fused), and every view's maps in the tensors file, for a wide and a tall image."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from safetensors.torch import load_file

from vlm_adapters.cli import main
from vlm_adapters.registry import get_adapter


def shapes_image(height: int, width: int, path: Path) -> Path:
    image = Image.new("RGB", (width, height), (200, 220, 235))
    draw = ImageDraw.Draw(image)
    side = min(height, width) // 2
    draw.ellipse((side // 4, side // 4, side // 4 + side, side // 4 + side), fill=(210, 40, 40))
    draw.rectangle(
        (width - side - side // 4, height - side - side // 4, width - side // 4, height - side // 4), fill=(40, 70, 200)
    )
    image.save(path)
    return path


MIN_VIEWS = {"internvl": 3, "idefics3": 3, "smolvlm": 3, "llava_next": 2, "llava_onevision": 2, "gemma3": 1}
"""Views a 4:1 image gets at least: tiles plus a global view; a base plus a high-res view; Gemma 3's
tiny default has pan-and-scan off (one stretched view; crops: tests/test_gemma3_maps.py)."""


@pytest.mark.parametrize("backbone", list(MIN_VIEWS))
def test_run_wide_and_tall(backbone: str, tmp_path: Path) -> None:
    wide = shapes_image(300, 1200, tmp_path / "wide.png")
    tall = shapes_image(1200, 300, tmp_path / "tall.png")
    out = tmp_path / "out"
    args = ["run", "--backbone", backbone, "--image", str(wide), str(tall), "--text", "a red circle", "--out", str(out)]
    assert main([*args, "--layers", "-1", "--words", "red circle"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    spec = get_adapter(backbone).from_tiny().spec
    for record, size in zip(summary["images"], [(300, 1200), (1200, 300)], strict=True):
        geometry = spec.geometry(size)
        assert record["status"] == "ok" and record["geometry"]["original_size"] == list(size)
        assert [v["name"] for v in record["geometry"]["views"]] == [v.name for v in geometry.views]
        assert geometry.num_views >= MIN_VIEWS[backbone]
        tensors = load_file(str(out / record["folder"] / "tensors.safetensors"))
        prefix = {v.name: "" if geometry.num_views == 1 else f"{v.name}." for v in geometry.views}
        for view in geometry.views:
            maps = tensors[f"{prefix[view.name]}attention"]
            assert list(maps.shape) == record["shapes"][f"{prefix[view.name]}attention"]
            assert maps.shape[0] == 1 and tuple(maps.shape[-2:]) == view.token_grid
            assert maps.shape[2] == len(record["query_tokens"])
            assert tuple(tensors[f"{prefix[view.name]}word_maps"].shape) == (1, *view.token_grid)
        fused = geometry.to_image([tensors[f"{prefix[v.name]}word_maps"] for v in geometry.views])
        seen = geometry.coverage() > 0  # a tiny tower drops the pixels short of a whole patch: not seen
        assert (
            tuple(fused.shape) == (1, *size) and bool((fused[:, seen] > 0).all()) and bool((fused[:, ~seen] == 0).all())
        )
        assert float(seen.float().mean()) > 0.85
        for name in ("overlay_all.png", "contact_sheet.png", record["overlays"][0]["file"]):
            with Image.open(out / record["folder"] / name) as png:
                assert png.width > 100 and png.height > 100


@pytest.mark.parametrize("backbone", ["internvl", "smolvlm"])
def test_inspect_lists_the_views(backbone: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", backbone, "--image-size", "300x1200", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    geometry = get_adapter(backbone).from_tiny().spec.geometry((300, 1200))
    assert data["geometry"]["num_image_tokens"] == geometry.num_image_tokens
    assert [v["box"] for v in data["geometry"]["views"]] == [v.box.model_dump() for v in geometry.views]
