"""``vlm-adapters extract``: a manifest (or a saved ``datasets`` dataset) to shards of maps and hidden states.

Inputs are checked before the model loads (manifest readable with the needed columns, output
folder usable, layers and heads present in the model config); errors are one line (exit 2).
This module imports nothing heavy, so registering the command keeps the CLI's startup light.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

DTYPES = ("float16", "bfloat16", "float32")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMG]?)I?B?$", re.IGNORECASE)


def add_extract_parser(sub: Any, **options: Any) -> None:
    p = sub.add_parser(
        "extract",
        help="phrase maps and hidden states for a whole manifest, into safetensors shards (resumable, multi-GPU)",
        description="Phrase maps and hidden states for every sample of a manifest, written to safetensors shards "
        "with an index. Resumable (--resume), and data-parallel under torchrun or accelerate launch.",
        **options,
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--manifest", type=Path, help="JSONL, CSV or Parquet: id, image, text, phrases per row")
    source.add_argument("--dataset", type=Path, help="a datasets folder written by save_to_disk (needs [datasets])")
    p.add_argument("--split", help="split of a --dataset DatasetDict")
    p.add_argument("--out", type=Path, required=True, help="output folder (new or empty, or a run to --resume)")
    p.add_argument("--backbone", help="adapter name, see `vlm-adapters list` (default: from --model's config)")
    p.add_argument("--model", help="checkpoint folder or hub id (default: the tiny random-weight model)")
    p.add_argument("--prompt", default=None, help="user turn before each text (a manifest `prompt` column wins)")
    p.add_argument("--layers", type=_int_list, help="decoder layers whose maps are stored, e.g. 0,-1 (default: all)")
    p.add_argument("--heads", type=_int_list, help="heads whose maps are stored, e.g. 0,3 (default: all)")
    p.add_argument("--dtype", choices=DTYPES, default="float16", help="dtype of the stored maps and hidden states")
    p.add_argument("--model-dtype", choices=DTYPES, default="float32", help="dtype the model runs in")
    p.add_argument("--reduce", choices=("mean", "max"), default="mean", help="how a phrase's token rows are pooled")
    p.add_argument("--batch-size", type=_positive, default=8, help="texts per forward")
    p.add_argument("--shard-size", type=_size, default="512MB", help="bytes per shard, e.g. 256MB or 2GB")
    p.add_argument("--limit", type=_positive, help="only the first N rows of the manifest")
    p.add_argument("--resume", action="store_true", help="continue the run in --out, keeping what it finished")
    p.add_argument("--no-shared-prefix", action="store_true", help="one full forward per sample (for comparison)")
    p.add_argument("--device", default="auto", help="auto (cuda:<local rank> if there is a GPU), cpu, cuda:N")
    p.add_argument("--device-map", help="e.g. auto: spread one model over this machine's GPUs (one process per node)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_extract)


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 0,-1, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _size(text: str) -> int:
    """``512MB``, ``2GB``, ``1048576`` -> bytes (binary units)."""
    m = _SIZE.match(text.strip())
    if not m or float(m.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"expected a size such as 256MB or 2GB, got {text!r}")
    return int(float(m.group(1)) * 1024 ** " KMG".index((m.group(2) or " ").upper()))


def cmd_extract(args: argparse.Namespace) -> int:
    import torch

    from ..checkpoints import load_config
    from ..errors import VisionInputError
    from ..pipeline import FrozenLMM
    from ..registry import adapter_for, get_adapter
    from ..run import check_indices
    from ..tiny import tiny_factory
    from .distributed import current_ranks
    from .job import DEFAULT_PROMPT, check_heads, check_output, extract, output_settings
    from .manifest import open_dataset_folder, open_manifest

    ranks = current_ranks()
    manifest = open_dataset_folder(args.dataset, args.split) if args.dataset else open_manifest(args.manifest)
    if args.model:
        config = load_config(args.model)
        adapter_cls = get_adapter(args.backbone) if args.backbone else adapter_for(config)
    elif args.backbone:
        adapter_cls = get_adapter(args.backbone)
        config = tiny_factory(adapter_cls).tiny_config()
    else:
        raise VisionInputError(
            "no model to run",
            found="neither --backbone nor --model",
            expected="--backbone NAME (its tiny random-weight model) or --model CHECKPOINT",
            fix="add --model PATH_OR_HUB_ID (the backbone is read from its config) or --backbone NAME",
        )
    text_config = config.get_text_config()
    check_indices("layers", args.layers, int(text_config.num_hidden_layers))
    heads = check_heads(args.heads, int(text_config.num_attention_heads))
    prompt = args.prompt if args.prompt is not None else DEFAULT_PROMPT
    settings = output_settings(
        adapter_cls.name,
        model=args.model,
        source=manifest.description,
        layers=args.layers,
        heads=heads,
        dtype=args.dtype,
        model_dtype=args.model_dtype,
        reduce=args.reduce,
        prompt=prompt,
    )
    check_output(args.out, settings, resume=args.resume, rank=ranks.rank)
    if args.device_map and ranks.local_rank > 0:
        raise VisionInputError(
            "--device-map with several processes on one machine",
            found=f"local rank {ranks.local_rank}",
            expected="one process per machine (it spreads the model over all of that machine's GPUs)",
            fix="launch with --nproc_per_node 1, or drop --device-map to run one model per GPU",
        )

    model_dtype = getattr(torch, args.model_dtype)
    device = ranks.device() if args.device == "auto" else torch.device(args.device)
    if args.model:
        lmm = FrozenLMM.from_pretrained(
            args.model,
            adapter=adapter_cls.name,
            dtype=model_dtype,
            device=None if args.device_map else device,
            device_map=args.device_map,
        )
    else:
        lmm = FrozenLMM.from_tiny(adapter_cls.name, dtype=model_dtype, device=device)
    arguments = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "func"}
    summary = extract(
        manifest,
        args.out,
        lmm,
        layers=args.layers,
        heads=args.heads,
        dtype=args.dtype,
        reduce=args.reduce,
        prompt=prompt,
        batch_size=args.batch_size,
        shard_bytes=args.shard_size,
        limit=args.limit,
        resume=args.resume,
        share_prefixes=not args.no_shared_prefix,
        model=args.model,
        ranks=ranks,
        progress=not args.no_progress,
        arguments=arguments,
    )
    where = f"rank {ranks.rank}/{ranks.world_size}: " if ranks.world_size > 1 else ""
    print(
        f"{where}{summary.ok} sample(s) extracted, {summary.errors} refused, {summary.skipped} already done "
        f"in {summary.seconds:.1f}s" + (f"; index written to {args.out / 'index.jsonl'}" if summary.merged else "")
    )
    return 0
