"""Dataset-scale extraction throughput: the F-LMM way vs per-sample capture vs ``extract`` with shared prefixes.

Every mode does the same work per sample (phrase maps on the token grid, phrase hidden states)
on manifests of the same texts and image size: images with ``texts_per_image`` referring
expressions each, at 1, 3 and 7 texts per image (RefCOCO has about 7 expressions per image,
RefCOCOg about 4). The one-forward-per-sample modes cost the same whatever the grouping, so they
run on the first manifest. One process builds the model once (random weights, the real widths
of Qwen2.5-VL-3B cut to a few layers: ``bench/pipeline_bench.py`` SHAPES; the F-LMM mode switches
it to eager attention), warms every mode up on one sample, then times the modes interleaved,
``--reps`` rounds, keeping each one's best round (background load only ever slows a round down).

    python bench/extract_bench.py                                  # CPU, writes bench/results-extract.json
    python bench/extract_bench.py --device cuda --dtype bfloat16 --samples 70 --out bench/results-extract-gpu.json

Modes:
  flmm      eager attention, output_attentions + output_hidden_states, one forward per expression
  capture   FrozenLMM, one forward per expression (attention rows captured at SDPA cost)
  extract   vlm_adapters.extract: rows of one image share one prefix forward (vision tower + LLM over
            system prompt, image and question, into a KV cache), texts run as one batched continuation;
            shards written to disk (included in the time)

Also records the peak live heap of ``extract`` over consecutive windows of a long manifest: it
must stay flat (rows are streamed, shards bounded).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_bench import PeakMemory, build  # the shared model builder and heap sampler

TEXTS = [
    ("the red car on the left", ["red car"]),
    ("a man holding a blue umbrella", ["man", "blue umbrella"]),
    ("the small dog next to the woman", ["small dog", "woman"]),
    ("two people sitting on the bench", ["people", "bench"]),
    ("the white cup on the table", ["white cup", "table"]),
    ("a bird above the tree", ["bird", "tree"]),
    ("the child in the yellow shirt", ["child", "yellow shirt"]),
]


def write_manifest(folder: Path, size: str, texts_per_image: int, samples: int, seed: int = 0) -> Path:
    """``ceil(samples / texts_per_image)`` images with ``texts_per_image`` texts each, as JSONL."""
    from vlm_adapters.testing import smooth_image

    h, w = (int(v) for v in size.split("x"))
    rows = []
    for i in range(math.ceil(samples / texts_per_image)):
        path = folder / f"image{seed + i}.png"
        if not path.exists():
            smooth_image(h, w, seed=seed + i).save(path)
        for j in range(texts_per_image):
            text, phrases = TEXTS[(i + j) % len(TEXTS)]
            rows.append({"id": f"{i}-{j}", "image": path.name, "text": text, "phrases": phrases})
    manifest = folder / f"manifest-{size}-{texts_per_image}-{samples}-{seed}.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


def per_sample(lmm: Any, manifest: Path, mode: str) -> None:
    """One forward per row, computing what extract stores (phrase maps per view, phrase hidden states)."""
    import torch
    from PIL import Image

    from vlm_adapters.extract.job import DEFAULT_PROMPT
    from vlm_adapters.phrases import phrase_mask_ids

    adapter = lmm.adapter
    tokenizer = adapter.processor.tokenizer
    images: dict[str, Any] = {}
    for line in manifest.read_text().splitlines():
        row = json.loads(line)
        if row["image"] not in images:
            images = {row["image"]: Image.open(manifest.parent / row["image"]).convert("RGB")}
        prompt = adapter.format_prompt(DEFAULT_PROMPT, answer=row["text"])
        batch = adapter.prepare([images[row["image"]]], [prompt])
        mask_ids = phrase_mask_ids(tokenizer, batch.input_ids[0], row["phrases"])
        queries = (mask_ids >= 0).nonzero().flatten()
        if mode == "capture":
            batch.mask_ids = mask_ids[None]
            out = lmm(batch, queries=[queries])[0]
            maps = out.phrase_maps_per_view()
            hidden = out.hidden_states
        else:  # the F-LMM way: eager maps of every layer, then the image columns of the phrase rows
            inputs = batch.to(lmm.device, lmm.dtype).inputs
            with torch.no_grad():
                ref = lmm.model(**inputs, output_attentions=True, output_hidden_states=True, use_cache=False)
            attention = torch.stack(ref.attentions)[:, 0].float()  # [L, H, seq, seq]
            columns = attention[:, :, :, batch.image_token_positions[0][0]]
            grids = adapter.tokens_to_views(columns, batch.geometries[0][0])
            ids = mask_ids.to(columns.device)
            maps = [
                torch.stack([g[:, :, ids == k].mean(2).flatten(0, 1) for k in range(int(ids.max()) + 1)]) for g in grids
            ]
            hidden = torch.stack(ref.hidden_states)[:, 0, queries.to(columns.device)]
        assert maps[0].ndim == 4 and hidden is not None
    if lmm.device.type == "cuda":
        torch.cuda.synchronize()


def timed(lmm: Any, mode: str, manifest: Path, out: Path, batch_size: int) -> float:
    """Seconds for one mode over one manifest (extract: including the shards it writes)."""
    import shutil

    from vlm_adapters.extract import extract

    lmm.model.set_attn_implementation("eager" if mode == "flmm" else "sdpa")
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    if mode == "extract":
        extract(manifest, out, lmm, progress=False, batch_size=batch_size)
    else:
        per_sample(lmm, manifest, mode)
    return time.perf_counter() - start


def memory_windows(lmm: Any, manifest: Path, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Peak live heap (above the heap before the run) of extract in consecutive windows of rows."""
    import torch

    from vlm_adapters.extract import extract

    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    window = max(1, len(rows) // args.windows)
    peaks: list[int] = []
    cuda = args.device.startswith("cuda")

    with PeakMemory() as memory:
        base = torch.cuda.memory_allocated() if cuda else memory.base
        if cuda:
            torch.cuda.reset_peak_memory_stats()

        def source() -> Any:
            for i, row in enumerate(rows):
                if i and i % window == 0:
                    peaks.append(int((torch.cuda.max_memory_allocated() if cuda else memory.peak) - base))
                    if cuda:
                        torch.cuda.reset_peak_memory_stats()
                    memory.reset()
                yield {**row, "image": str(manifest.parent / row["image"])}

        extract(source(), out, lmm, progress=False, batch_size=args.batch_size, shard_bytes=args.shard_bytes)
    return {"samples": len(rows), "window": window, "window_peak_bytes": peaks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="qwen2_5_vl")
    parser.add_argument("--size", default="480x640", help="image size HxW (480x640: COCO, as in RefCOCO)")
    parser.add_argument("--texts-per-image", type=int, nargs="+", default=[1, 3, 7])
    parser.add_argument("--samples", type=int, default=7, help="samples per manifest (rounded up to whole images)")
    parser.add_argument("--modes", nargs="+", default=["flmm", "capture", "extract"])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--memory-samples", type=int, default=96, help="rows of the long manifest (0: skip)")
    parser.add_argument("--memory-size", default="224x224")
    parser.add_argument("--windows", type=int, default=4)
    parser.add_argument("--shard-bytes", type=int, default=8 * 2**20)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("bench/results-extract.json"))
    parser.add_argument("--reps", type=int, default=1, help="interleaved rounds; each mode keeps its best")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    lmm, _ = build(args.backbone, "capture", getattr(torch, args.dtype), args.device)
    rows: list[dict[str, Any]] = []
    memory: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        manifests = {t: write_manifest(folder, args.size, t, args.samples) for t in args.texts_per_image}
        first = manifests[args.texts_per_image[0]]
        warm = write_manifest(folder, args.size, 1, 1, seed=10_000)
        plan = [(mode, first) for mode in args.modes if mode != "extract"]
        plan += [("extract", m) for m in manifests.values()] if "extract" in args.modes else []
        for mode in dict.fromkeys(m for m, _ in plan):
            timed(lmm, mode, warm, folder / "out", args.batch_size)
        best: dict[tuple[str, Path], float] = {}
        for rep in range(args.reps):
            for mode, manifest in plan:
                seconds = timed(lmm, mode, manifest, folder / "out", args.batch_size)
                best[mode, manifest] = min(best.get((mode, manifest), seconds), seconds)
                print(f"round {rep}: {mode:8s} {manifest.name}: {seconds:.1f}s", flush=True)
        for per_image, manifest in manifests.items():
            count = len(manifest.read_text().splitlines())
            results: dict[str, dict[str, Any]] = {}
            for mode, used in plan:
                if used == manifest or (mode != "extract" and used == first):
                    n = len(used.read_text().splitlines())
                    seconds = best[mode, used]
                    results[mode] = {"samples": n, "seconds": seconds, "samples_per_s": n / seconds}
            entry: dict[str, Any] = {"texts_per_image": per_image, "samples": count, "modes": results}
            base = results.get("capture")
            if base:
                entry["speedup_vs_capture"] = {
                    m: r["samples_per_s"] / base["samples_per_s"] for m, r in results.items() if m != "capture"
                }
            rows.append(entry)
            line = f"{per_image} text(s)/image, {count} samples: "
            line += "  ".join(f"{m} {r['samples_per_s']:.3f}/s" for m, r in results.items())
            if base:
                line += "  | vs capture: " + "  ".join(f"{m} {v:.2f}x" for m, v in entry["speedup_vs_capture"].items())
            print(line, flush=True)
        if args.memory_samples:
            lmm.model.set_attn_implementation("sdpa")
            long = write_manifest(folder, args.memory_size, 3, args.memory_samples, seed=1000)
            memory = {**memory_windows(lmm, long, folder / "memory", args), "size": args.memory_size}
            peaks = memory["window_peak_bytes"]
            memory["last_over_first"] = peaks[-1] / max(peaks[0], 1) if peaks else None
            print(
                f"memory over {memory['samples']} samples, windows of {memory['window']}: "
                + ", ".join(f"{p / 2**20:.1f}" for p in peaks)
                + f" MiB (last/first {memory['last_over_first']:.2f})",
                flush=True,
            )
    import platform

    import transformers

    meta = {
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "backbone": f"{args.backbone} shape (bench/pipeline_bench.py SHAPES)",
        "size": args.size,
        "device": args.device,
        "dtype": args.dtype,
        "batch_size": args.batch_size,
        "reps": args.reps,
        "baselines_on": f"{args.texts_per_image[0]} text(s) per image (one forward per sample either way)",
    }
    args.out.write_text(json.dumps({"meta": meta, "throughput": rows, "memory": memory}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
