"""``vlm-adapters run``: the main job. Word-to-image attention overlays for each image.

Per image it writes ``overlay_all.png`` (mean over the chosen layers, heads and words),
``overlay_<i>_<word>.png`` per chosen word, and to ``--out``: ``summary.json`` (backbone,
geometry, token grid, shapes, timings) and ``tensors.safetensors`` (captured maps and hidden
states, keyed by image).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from safetensors.torch import save_file
from tqdm import tqdm

from .errors import VisionInputError
from .overlay import overlay
from .phrases import find_phrase
from .pipeline import FrozenLMM, FrozenOutput

DEFAULT_PROMPT = "describe the image ."


def add_run_parser(sub: Any) -> None:
    p = sub.add_parser("run", help="word-to-image attention overlays, summary and tensors per image")
    p.add_argument("--backbone", required=True, help="adapter name, see `vlm-adapters list`")
    p.add_argument("--model", help="checkpoint folder or hub id (default: the tiny random-weight model)")
    p.add_argument("--image", nargs="+", required=True, type=Path, help="one or more image files")
    p.add_argument("--text", required=True, help="the caption or referring expression (teacher-forced answer)")
    p.add_argument("--prompt", default=DEFAULT_PROMPT, help="the user turn before the answer")
    p.add_argument("--out", type=Path, default=Path("runs/latest"), help="output folder")
    p.add_argument("--layers", type=_int_list, help="decoder layers to capture, e.g. 0,2,-1 (default: all)")
    p.add_argument("--heads", type=_int_list, help="heads to average in the overlays (default: all)")
    p.add_argument(
        "--words", nargs="+", help="words or phrases of --text to draw one overlay each (default: every token)"
    )
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_run)


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 0,-1, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def check_indices(what: str, values: Sequence[int] | None, count: int) -> None:
    """Layers / heads asked for on the command line exist in the loaded model."""
    if values is None:
        return
    bad = [v for v in values if not -count <= v < count]
    if bad or len({v % count for v in values}) != len(values):
        raise VisionInputError(
            f"--{what} does not fit the model",
            found=f"{list(values)}",
            expected=f"distinct indices in {-count}..{count - 1} ({count} {what})",
            fix=f"pick {what} that exist; `vlm-adapters inspect` and the model config list them",
        )


def _slug(word: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", word).strip("_") or "tok"


def cmd_run(args: argparse.Namespace) -> int:
    dtype = getattr(torch, args.dtype)
    load_start = time.perf_counter()
    if args.model:
        lmm = FrozenLMM.from_pretrained(args.model, adapter=args.backbone, dtype=dtype, device=args.device)
    else:
        lmm = FrozenLMM.from_tiny(args.backbone, dtype=dtype, device=args.device)
    load_s = time.perf_counter() - load_start
    text_config = lmm.model.config.get_text_config()
    check_indices("layers", args.layers, int(text_config.num_hidden_layers))
    check_indices("heads", args.heads, int(text_config.num_attention_heads))
    args.out.mkdir(parents=True, exist_ok=True)
    prompt = lmm.adapter.format_prompt(args.prompt, num_images=1, answer=args.text)
    summary: dict[str, Any] = {
        "backbone": lmm.adapter.name,
        "model": args.model or "tiny (random weights)",
        "spec": lmm.adapter.spec.model_dump(mode="json"),
        "text": args.text,
        "prompt": prompt,
        "timings": {"load_s": round(load_s, 4)},
        "images": [],
    }
    tensors: dict[str, torch.Tensor] = {}
    for index, path in enumerate(tqdm(args.image, desc="images", unit="img")):
        image = Image.open(path).convert("RGB")
        batch = lmm.prepare([image], [prompt])
        queries = find_phrase(lmm.adapter.processor.tokenizer, batch.input_ids[0], args.text)
        out = lmm(batch, layers=args.layers, queries=[queries])[0]
        folder = args.out / f"{index:03d}_{_slug(path.stem)}"
        folder.mkdir(exist_ok=True)
        record = write_overlays(lmm, out, image, folder, args.heads, args.words)
        record["image"] = str(path)
        summary["images"].append(record)
        for name, maps in view_maps(out).items():
            tensors[f"image{index}.{name}"] = maps.contiguous()
        if out.hidden_states is not None:
            tensors[f"image{index}.hidden_states"] = out.hidden_states.float().contiguous()
        tensors[f"image{index}.query_positions"] = out.query_positions.contiguous()
    save_file(tensors, str(args.out / "tensors.safetensors"))
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {len(args.image)} image(s) to {args.out}")
    return 0


def view_maps(out: FrozenOutput) -> dict[str, torch.Tensor]:
    """The image's captured maps by tensor name: ``attention`` for a single view, else
    ``<view name>.attention`` per view (each ``[layers, heads, queries, rows, cols]``)."""
    views = out.view_attention[0]
    if len(views) == 1:
        return {"attention": views[0]}
    return {f"{v.name}.attention": maps for v, maps in zip(out.geometries[0].views, views, strict=True)}


def write_overlays(
    lmm: FrozenLMM,
    out: FrozenOutput,
    image: Image.Image,
    folder: Path,
    heads: Sequence[int] | None,
    words: Sequence[str] | None,
) -> dict[str, Any]:
    """Overlays for one image (views fused onto the original pixels); returns its entry of ``summary.json``."""
    views = out.view_attention[0]  # per view [L, H, Q, r, c]
    if heads is not None:
        views = [maps[:, list(heads)] for maps in views]
    per_query = [maps.mean(dim=(0, 1)) for maps in views]  # per view [Q, r, c]

    def on_image(queries: torch.Tensor | int | slice) -> torch.Tensor:
        return out.to_image([maps[queries].reshape(-1, *maps.shape[1:]).mean(0) for maps in per_query])

    tokenizer = lmm.adapter.processor.tokenizer
    tokens = [tokenizer.decode([int(t)]).strip() for t in out.query_token_ids]
    overlay(image, on_image(slice(None))).save(folder / "overlay_all.png")
    drawn = []
    if words:  # each word (or phrase) of the text: its tokens' maps averaged
        for i, word in enumerate(words):
            where = find_phrase(tokenizer, out.query_token_ids, word)
            name = f"overlay_{i:02d}_{_slug(word)}.png"
            overlay(image, on_image(where)).save(folder / name)
            drawn.append({"query": where.tolist(), "token": word, "file": name})
    else:  # one overlay per token of the text
        for q, token in enumerate(tokens):
            name = f"overlay_{q:02d}_{_slug(token)}.png"
            overlay(image, on_image(q)).save(folder / name)
            drawn.append({"query": [q], "token": token, "file": name})
    g = out.geometries[0]
    return {
        "folder": folder.name,
        "geometry": g.summary(),
        "shapes": {
            **{name: list(maps.shape) for name, maps in view_maps(out).items()},
            "hidden_states": list(out.hidden_states.shape) if out.hidden_states is not None else None,
        },
        "layers": out.layers,
        "query_tokens": tokens,
        "overlays": drawn,
        "timings": {k: round(v, 4) for k, v in out.timings.items()},
    }
