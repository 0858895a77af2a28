"""``vlm-adapters run``: the main job. Word-to-image attention overlays, maps and hidden states per image.

Every input is checked before the model loads (images decode, words are in the text, layers and
heads exist in the config, the device is there, ``--out`` is free), so a bad one costs a second,
not a model load. Then each image is written as soon as it is done (see ``run_folder``); an image
that fails is recorded in ``summary.json`` with its error and the others go on.

Under ``--out``:

* ``summary.json``: the command's arguments, backbone, model, spec, device, dtype, the words,
  layers and heads, status (``running``, ``interrupted``, ``finished``) and one record per image
  (its folder, geometry, shapes, query tokens, overlays, timings, or its error);
* per image ``NNN_<name>/``: ``overlay_all.png`` (the whole text), ``overlay_<k>_<word>.png`` per
  word, ``contact_sheet.png`` (all words side by side), ``tensors.safetensors`` (maps, hidden
  states and positions, with the metadata needed to read them) and ``image.json`` (its record).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .devices import DTYPES
from .errors import OptionError

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from .adapter import BackboneAdapter
    from .overlay import OverlayStyle
    from .phrases import Word
    from .pipeline import FrozenLMM, FrozenOutput
    from .run_folder import RunFolder

DEFAULT_PROMPT = "describe the image ."
EXIT_IMAGES_FAILED = 1
EXIT_INTERRUPTED = 130


def add_run_parser(sub: Any, **parser_kwargs: Any) -> None:
    """The ``run`` subcommand; ``parser_kwargs`` carry the CLI's formatter and shared options."""
    p = sub.add_parser(
        "run",
        help="word-to-image attention overlays, maps and hidden states per image",
        description="The main job: word-to-image attention overlays, maps and hidden states for each image. "
        "Inputs are checked before the model loads; each image is written as soon as it is done.",
        **parser_kwargs,
    )
    which = p.add_argument_group("model")
    which.add_argument("--backbone", help="adapter name, see: vlm-adapters list (optional with --model)")
    which.add_argument(
        "--model", help="checkpoint folder or hub id (without it: the backbone's tiny random-weight model)"
    )
    which.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu, cuda, cuda:N or mps")
    which.add_argument("--dtype", default="auto", choices=DTYPES, help="auto: bfloat16 on a GPU, float32 on the CPU")
    data = p.add_argument_group("inputs")
    data.add_argument("--image", nargs="+", required=True, type=Path, help="one or more image files")
    data.add_argument("--text", required=True, help="the caption or referring expression (the answer turn)")
    data.add_argument("--prompt", default=DEFAULT_PROMPT, help="the user turn before the answer")
    data.add_argument(
        "--words",
        nargs="+",
        metavar="WORD",
        help="words of --text to draw, one overlay each (default: every word). "
        "WORD is a word or phrase of --text, WORD@N its N-th occurrence, or START:END a character span",
    )
    data.add_argument("--layers", type=int_list, help="decoder layers to capture, e.g. 0,2,-1 (default: all)")
    data.add_argument("--heads", type=int_list, help="heads to keep and average, e.g. 0,1 (default: all)")
    look = p.add_argument_group("overlays")
    look.add_argument("--cmap", default="turbo", help="matplotlib colour map")
    look.add_argument("--alpha", type=float, default=0.5, help="opacity of the map over the image, 0 to 1")
    look.add_argument("--gray-underlay", action="store_true", help="draw the image in gray under the map")
    look.add_argument("--shared-scale", action="store_true", help="one colour scale for all words of an image")
    out = p.add_argument_group("output")
    out.add_argument("--out", type=Path, default=Path("runs/latest"), help="output folder (new or empty)")
    again = out.add_mutually_exclusive_group()
    again.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    again.add_argument("--resume", action="store_true", help="finish the run of this same command in --out")
    p.set_defaults(func=cmd_run)


def int_list(text: str) -> list[int]:
    """``"0,2,-1"`` -> ``[0, 2, -1]``."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 0,-1, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def check_indices(what: str, values: Sequence[int] | None, count: int) -> list[int]:
    """Layers / heads asked for exist in the model's config; returned as indices ``0..count-1``."""
    if values is None:
        return list(range(count))
    bad = [v for v in values if not -count <= v < count]
    if bad or len({v % count for v in values}) != len(values):
        raise OptionError(
            f"--{what} does not fit the model",
            found=f"{list(values)}",
            expected=f"distinct indices in {-count}..{count - 1} ({count} {what})",
            fix=f"pick {what} that exist; vlm-adapters inspect shows the counts",
        )
    return [v % count for v in values]


def run_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """What makes two runs the same run (``--resume`` compares it): every option but where and how to write."""
    model = args.model
    if model is not None and Path(model).exists():
        model = str(Path(model).resolve())
    return {
        "backbone": args.backbone,
        "model": model,
        "images": [str(p.resolve()) for p in args.image],
        "text": args.text,
        "prompt": args.prompt,
        "words": args.words,
        "layers": args.layers,
        "heads": args.heads,
        "device": args.device,
        "dtype": args.dtype,
        "cmap": args.cmap,
        "alpha": args.alpha,
        "gray_underlay": args.gray_underlay,
        "shared_scale": args.shared_scale,
    }


@dataclass
class RunPlan:
    """Everything ``run`` needs, checked, before a model weight is read."""

    args: argparse.Namespace
    folder: RunFolder
    adapter: BackboneAdapter
    device: torch.device
    dtype: torch.dtype
    words: list[Word]
    layers: list[int]
    heads: list[int]
    style: OverlayStyle
    counts: dict[str, Any]
    """The model's layer and head counts (``checkpoints.model_summary``)."""
    done: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def random_weights(self) -> bool:
        return self.args.model is None


def plan_run(args: argparse.Namespace) -> RunPlan:
    """Check every input, cheapest first (torch and transformers load only for the device and the
    config); raise a typed error for the first bad one. Writes nothing."""
    from .checkpoints import bind_adapter, model_summary
    from .devices import resolve_device, resolve_dtype
    from .image_files import check_image_file
    from .overlay import OverlayStyle
    from .phrases import choose_words
    from .run_folder import RunFolder

    folder = RunFolder(args.out, run_arguments(args), overwrite=args.overwrite, resume=args.resume)
    done = folder.check()
    for path in args.image:
        check_image_file(path)
    if not args.text.strip():
        raise OptionError(
            "--text is empty", found=repr(args.text), expected="a caption", fix="pass --text 'the red circle'"
        )
    words, warnings = choose_words(args.text, args.words)
    style = OverlayStyle(args.cmap, args.alpha, args.gray_underlay, random_weights=args.model is None)
    style.check()
    device = resolve_device(args.device)  # from here on torch is imported
    dtype = resolve_dtype(args.dtype, device)
    adapter = bind_adapter(args.backbone, args.model)
    counts = model_summary(adapter.config)
    layers = check_indices("layers", args.layers, counts["layers"])
    heads = check_indices("heads", args.heads, counts["heads"])
    for warning in warnings:
        print(f"vlm-adapters: warning: {warning}", file=sys.stderr)
    return RunPlan(args, folder, adapter, device, dtype, words, layers, heads, style, counts, done)


def cmd_run(args: argparse.Namespace) -> int:
    plan = plan_run(args)
    from .pipeline import FrozenLMM

    start = time.perf_counter()
    model: Any = plan.adapter.load_model(args.model, dtype=plan.dtype)
    model = model.to(plan.device)
    lmm = FrozenLMM(model, plan.adapter)
    summary = run_summary(plan, load_s=time.perf_counter() - start)
    records: dict[int, dict[str, Any]] = dict(plan.done)
    folder = plan.folder
    folder.open()
    try:
        todo = [i for i in range(len(args.image)) if i not in plan.done]
        for index in _progress(todo):
            records[index] = run_image(lmm, plan, index)
            summary["images"] = [records[i] for i in sorted(records)]
            folder.write_summary(summary)
    except KeyboardInterrupt:
        summary["status"] = "interrupted"
        kept = sum(1 for r in records.values() if r["status"] == "ok")
        if folder.discard_if_empty():
            print(f"vlm-adapters: interrupted before the first image; removed {args.out}", file=sys.stderr)
        else:
            folder.write_summary(summary)
            print(
                f"vlm-adapters: interrupted; {kept} image(s) finished in {args.out} "
                "(finish with the same command and --resume)",
                file=sys.stderr,
            )
        return EXIT_INTERRUPTED
    summary["status"] = "finished"
    folder.write_summary(summary)
    failed = [r for r in records.values() if r["status"] != "ok"]
    print(f"wrote {len(records) - len(failed)} of {len(args.image)} image(s) to {args.out}")
    return EXIT_IMAGES_FAILED if failed else 0


def _progress(items: list[int]) -> Any:
    from tqdm import tqdm

    return tqdm(items, desc="images", unit="img", disable=len(items) < 2)


def run_summary(plan: RunPlan, load_s: float) -> dict[str, Any]:
    """The per-run part of ``summary.json``; image records are added as they finish."""
    from . import __version__

    args = plan.args
    adapter = plan.adapter
    return {
        "vlm_adapters_version": __version__,
        "status": "running",
        "arguments": plan.folder.arguments,
        "backbone": adapter.name,
        "model": args.model or "tiny (random weights)",
        "random_weights": plan.random_weights,
        "spec": adapter.spec.model_dump(mode="json"),
        "device": str(plan.device),
        "dtype": str(plan.dtype).removeprefix("torch."),
        "text": args.text,
        "prompt": adapter.format_prompt(args.prompt, num_images=1, answer=args.text),
        "words": [{"entry": w.entry, "span": [w.start, w.end], "text": w.text} for w in plan.words],
        "layers": plan.layers,
        "heads": plan.heads,
        "timings": {"load_s": round(load_s, 4)},
        "images": [plan.done[i] for i in sorted(plan.done)],
    }


def run_image(lmm: FrozenLMM, plan: RunPlan, index: int) -> dict[str, Any]:
    """One image, start to finish; its record. A typed error is recorded, and the run goes on."""
    path: Path = plan.args.image[index]
    name = f"{index:03d}_{slug(path.stem)}"
    try:
        with plan.folder.image_folder(name) as tmp:
            record = _write_image(lmm, plan, index, path, tmp)
            record["folder"] = name
            (tmp / "image.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
        return record
    except Exception as exc:
        if plan.args.debug:
            raise
        message = " ".join(str(exc).split())
        print(f"vlm-adapters: image {index} ({path}) failed: {type(exc).__name__}: {message}", file=sys.stderr)
        return {
            "index": index,
            "image": str(path),
            "status": "failed",
            "error": {"type": type(exc).__name__, "message": message},
        }


def _write_image(lmm: FrozenLMM, plan: RunPlan, index: int, path: Path, folder: Path) -> dict[str, Any]:
    import torch

    from .image_files import load_image_file
    from .phrases import locate_text

    args = plan.args
    t0 = time.perf_counter()
    image = load_image_file(path)
    prompt = plan.adapter.format_prompt(args.prompt, num_images=1, answer=args.text)
    batch = lmm.prepare([image], [prompt])
    tokenizer = plan.adapter.processor.tokenizer
    located = locate_text(tokenizer, batch.input_ids[0], args.text)
    t1 = time.perf_counter()
    out = lmm(batch, layers=plan.layers, queries=[located.positions])[0]
    t2 = time.perf_counter()
    views = out.geometries[0].views
    word_tokens = [located.tokens_for(w.start, w.end) for w in plan.words]
    word_maps, all_maps, tensors = [], [], {}
    for view, maps in zip(views, out.view_attention[0], strict=True):
        attention = maps[:, plan.heads]  # [layers, heads, queries, rows, cols]
        per_query = attention.mean(dim=(0, 1))  # [queries, rows, cols]
        word_maps.append(torch.stack([per_query[rows].mean(0) for rows in word_tokens]))  # [words, rows, cols]
        all_maps.append(per_query.mean(0))
        prefix = "" if len(views) == 1 else f"{view.name}."
        tensors[prefix + "attention"] = attention.contiguous()
        tensors[prefix + "word_maps"] = word_maps[-1].contiguous()
    files = draw_overlays(plan, image, out, word_maps, all_maps, folder)
    tensors["query_positions"] = out.query_positions.contiguous()
    tensors["query_token_ids"] = out.query_token_ids.contiguous()
    if out.hidden_states is not None:
        tensors["hidden_states"] = out.hidden_states.float().contiguous()
    geometry = out.geometries[0].summary()
    save_tensors(plan, tensors, geometry, word_tokens, folder / "tensors.safetensors")
    tokens = [tokenizer.decode([int(t)]) for t in out.query_token_ids]
    return {
        "index": index,
        "image": str(path),
        "status": "ok",
        "geometry": geometry,
        "shapes": {k: list(v.shape) for k, v in tensors.items()},
        "query_tokens": tokens,
        "overlays": [
            {"word": w.text, "span": [w.start, w.end], "tokens": rows, "file": f}
            for w, rows, f in zip(plan.words, word_tokens, files, strict=True)
        ],
        "timings": {
            "prepare_s": round(t1 - t0, 4),
            "forward_s": round(t2 - t1, 4),
            "write_s": round(time.perf_counter() - t2, 4),
        },
    }


def draw_overlays(
    plan: RunPlan,
    image: Image.Image,
    out: FrozenOutput,
    word_maps: list[torch.Tensor],
    all_maps: list[torch.Tensor],
    folder: Path,
) -> list[str]:
    """``overlay_all.png``, one overlay per word and ``contact_sheet.png``; the per-word file names.

    ``word_maps`` / ``all_maps`` hold one map per view; a multi-view image is drawn fused (the
    mean of the views that show each pixel, see ``ImageGeometry.to_image``)."""
    from .overlay import Panel, contact_sheet, overlay_figure, save_png, value_range

    pixels = out.to_image(word_maps, image=0).float().cpu().numpy()  # [words, H, W]
    text = plan.args.text
    labels = [
        f'"{w.text}"' + (f" (characters {w.start}:{w.end})" if text.count(w.text) > 1 else "") for w in plan.words
    ]
    panels = [Panel(label, pixels[k]) for k, label in enumerate(labels)]
    whole = Panel(f'"{text}" (all words)', out.to_image(all_maps, image=0).float().cpu().numpy())
    scale = value_range([*panels, whole]) if plan.args.shared_scale else None
    heading = figure_heading(plan)
    save_png(overlay_figure(image, whole, heading, plan.style, scale), folder / "overlay_all.png")
    names = []
    for k, (w, panel) in enumerate(zip(plan.words, panels, strict=True)):
        name = f"overlay_{k:02d}_{slug(w.text)}.png"
        save_png(overlay_figure(image, panel, heading, plan.style, scale), folder / name)
        names.append(name)
    save_png(
        contact_sheet(image, panels, heading, plan.style, shared=plan.args.shared_scale), folder / "contact_sheet.png"
    )
    return names


def figure_heading(plan: RunPlan) -> str:
    """Backbone, layers and heads: what a map was averaged over, on every figure."""
    count = plan.counts
    layers = "all" if len(plan.layers) == count["layers"] else ",".join(map(str, plan.layers))
    heads = "all" if len(plan.heads) == count["heads"] else ",".join(map(str, plan.heads))
    return f"{plan.adapter.name}  |  layers {layers} of {count['layers']}  |  heads {heads} of {count['heads']}"


def save_tensors(
    plan: RunPlan, tensors: dict[str, torch.Tensor], geometry: dict[str, Any], word_tokens: list[list[int]], path: Path
) -> None:
    """``tensors.safetensors`` with string metadata that says what each tensor is."""
    from safetensors.torch import save_file

    metadata = {
        "backbone": plan.adapter.name,
        "model": plan.args.model or "tiny (random weights)",
        "spec": plan.adapter.spec.model_dump_json(),
        "geometry": json.dumps(geometry),
        "text": plan.args.text,
        "words": json.dumps(
            [
                {"word": w.text, "span": [w.start, w.end], "tokens": t}
                for w, t in zip(plan.words, word_tokens, strict=True)
            ],
            ensure_ascii=False,
        ),
        "layers": json.dumps(plan.layers),
        "heads": json.dumps(plan.heads),
        "layout": json.dumps(
            {
                "attention": "[layers, heads, queries, rows, cols] (per view as <view>.attention when the "
                "image has several views; geometry lists them)",
                "word_maps": "[words, rows, cols] (mean over layers, heads and each word's tokens; per view as "
                "<view>.word_maps)",
                "hidden_states": "[layers + 1, queries, dim] (index 0 = decoder input)",
                "query_positions": "[queries] positions in input_ids",
                "query_token_ids": "[queries]",
            }
        ),
    }
    save_file({k: v.detach().cpu() for k, v in tensors.items()}, str(path), metadata=metadata)


def slug(word: str) -> str:
    """A file-name-safe form of a word (ASCII letters, digits, ``_`` and ``-``)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", word).strip("_")[:40] or "word"
