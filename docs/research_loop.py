"""The same grounding research loop on any backbone: only the name changes.

    python docs/research_loop.py            # several tiny offline models, live and from shards

Per sample: build the prompt with the caption as the answer, mark each phrase's tokens in
``mask_ids``, run the frozen model once (attention captured at SDPA cost), pool the phrase
maps into the mask-head input, train a toy mask head one step against the ground-truth mask
brought onto the token grid, and map its prediction back onto the original pixels.

An image is one or more views (one for most backbones; a base and a high-resolution view, tiles
plus a thumbnail or a global view, or pan-and-scan crops for others), each with its own token
grid, so the head runs on every view and the views' predictions are fused onto the original
image by their boxes.

``research_loop_from_shards`` is the same loop in two steps, as it runs at dataset scale:
extract the phrase maps of the whole dataset once (``vlm-adapters extract``, on as many GPUs
as there are), then train the head from the shards as often as it changes, without the VLM.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from vlm_adapters import ImageGeometry
from vlm_adapters.extract import extract
from vlm_adapters.features import ExtractedFeatures
from vlm_adapters.phrases import phrase_mask_ids
from vlm_adapters.pipeline import FrozenLMM


def toy_dataset() -> list[tuple[Image.Image, str, list[str], torch.Tensor]]:
    """(image, caption, phrases, one binary mask per phrase on the original image)."""
    samples = []
    for h, w in [(427, 640), (300, 200)]:
        image = Image.new("RGB", (w, h), (200, 220, 235))
        draw = ImageDraw.Draw(image)
        circle = (w // 8, h // 4, w // 2, h * 3 // 4)
        square = (w * 5 // 8, h // 4, w * 7 // 8, h // 2)
        draw.ellipse(circle, fill=(210, 40, 40))
        draw.rectangle(square, fill=(40, 70, 200))
        masks = torch.zeros(2, h, w)
        masks[0, circle[1] : circle[3], circle[0] : circle[2]] = 1.0
        masks[1, square[1] : square[3], square[0] : square[2]] = 1.0
        samples.append((image, "a red circle and a blue square", ["red circle", "blue square"], masks))
    return samples


def research_loop(backbone: str) -> dict[str, object]:
    lmm = FrozenLMM.from_tiny(backbone)
    tokenizer = lmm.adapter.processor.tokenizer
    head: torch.nn.Module | None = None
    samples: list[dict[str, object]] = []
    for image, caption, phrases, masks in toy_dataset():
        prompt = lmm.adapter.format_prompt("describe the image .", answer=caption)
        batch = lmm.prepare([image], [prompt])
        batch.mask_ids = phrase_mask_ids(tokenizer, batch.input_ids[0], phrases)[None]
        out = lmm(batch)[0]

        views = out.phrase_maps_per_view(reduce="mean")  # per view [K, layers*heads, rows, cols]
        if head is None:  # a 1x1-conv "mask head" over all layers and heads
            head = torch.nn.Conv2d(views[0].shape[1], 1, kernel_size=1)
            optimiser = torch.optim.SGD(head.parameters(), lr=0.1)
        samples.append(train_step(head, optimiser, views, out.geometries[0], masks))
    return {"backbone": backbone, "samples": samples}


def train_step(
    head: torch.nn.Module,
    optimiser: torch.optim.Optimizer,
    views: Sequence[torch.Tensor],
    geometry: ImageGeometry,
    masks: torch.Tensor,
) -> dict[str, object]:
    """One step of the toy head on one sample's per-view phrase maps; the prediction fused back on
    the original image."""
    targets = geometry.to_view_grids(masks)  # per view [K, rows, cols], padding cropped away
    logits = [head(maps / maps.sum(dim=(-2, -1), keepdim=True).clamp_min(1e-12))[:, 0] for maps in views]
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    loss = torch.stack([bce(x, t) for x, t in zip(logits, targets, strict=True)]).mean()
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    prediction = geometry.to_image([x.sigmoid().detach() for x in logits])  # [K, H, W], views fused
    return {
        "image_size": geometry.original_size,
        "views": [v.name for v in geometry.views],
        "token_grids": [v.token_grid for v in geometry.views],
        "head_inputs": [tuple(maps.shape) for maps in views],
        "prediction": tuple(prediction.shape),
        "loss": float(loss.detach()),
    }


def research_loop_from_shards(backbone: str, folder: Path) -> dict[str, object]:
    """The same head, trained from extracted shards: the VLM runs once per dataset, not once per epoch."""
    rows, masks = [], {}
    for i, (image, caption, phrases, mask) in enumerate(toy_dataset()):
        image.save(folder / f"toy{i}.png")
        rows.append({"id": f"toy{i}", "image": str(folder / f"toy{i}.png"), "text": caption, "phrases": phrases})
        masks[f"toy{i}"] = mask
    # Step 1, once: the same as `vlm-adapters extract --manifest rows.jsonl --out features` (or under torchrun).
    extract(rows, folder / "features", FrozenLMM.from_tiny(backbone), progress=False)

    # Step 2, every epoch: read the shards (lazily, only the maps) and train the head.
    features = ExtractedFeatures(folder / "features", keys=("maps",))
    loader = torch.utils.data.DataLoader(features, batch_size=None, shuffle=True)
    head: torch.nn.Module | None = None
    samples: list[dict[str, object]] = []
    for sample in loader:
        views = [v.float() for v in sample["maps"][0]]  # image 0: per view [K, layers*heads, rows, cols]
        if head is None:
            head = torch.nn.Conv2d(views[0].shape[1], 1, kernel_size=1)
            optimiser = torch.optim.SGD(head.parameters(), lr=0.1)
        step = train_step(head, optimiser, views, sample["geometries"][0], masks[sample["id"]])
        samples.append({"id": sample["id"], **step})
    return {"backbone": backbone, "samples": samples}


if __name__ == "__main__":
    for name in ("qwen2_5_vl", "deepseek_vl", "llava_next", "internvl", "gemma3", "smolvlm"):
        print(research_loop(name))
        with tempfile.TemporaryDirectory() as tmp:
            print(research_loop_from_shards(name, Path(tmp)))
