"""``vlm-adapters run`` and ``inspect`` on the tiled backbones: one overlay per image on its own
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


@pytest.mark.parametrize("backbone", ["internvl", "idefics3", "smolvlm"])
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
        assert geometry.num_views > 2  # a 4:1 image is tiled
        tensors = load_file(str(out / record["folder"] / "tensors.safetensors"))
        for view in geometry.views:
            maps = tensors[f"{view.name}.attention"]
            assert list(maps.shape) == record["shapes"][f"{view.name}.attention"]
            assert maps.shape[0] == 1 and tuple(maps.shape[-2:]) == view.token_grid
            assert maps.shape[2] == len(record["query_tokens"])
            assert tuple(tensors[f"{view.name}.word_maps"].shape) == (1, *view.token_grid)
        fused = geometry.to_image([tensors[f"{v.name}.word_maps"] for v in geometry.views])
        assert tuple(fused.shape) == (1, *size) and bool((fused > 0).all())  # every pixel seen by some view
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
