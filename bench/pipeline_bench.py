"""Frozen-LMM forward cost: floor (no capture) vs our capture vs the F-LMM way (eager maps).

Each (backbone, image size, mode) runs in its own process so peak memory is its own. Models
are random-weight, with the real hidden sizes and head counts of Qwen2.5-VL-3B and
DeepSeek-VL-1.3B but few layers, so the run fits a 2-core, 24 GB machine.

    python bench/pipeline_bench.py                       # all backbones, both sizes
    python bench/pipeline_bench.py --backbones qwen2_5_vl --sizes 448x448 --reps 2

Modes:
  floor    the pipeline's forward with capture off (SDPA, last-position logits)
  capture  FrozenLMM: same forward, attention rows + hidden states captured for every text
           token after the image, all layers, all heads
  eager    stock forward with eager attention, output_attentions=True, output_hidden_states=True

Prints median seconds per mode, peak memory per mode (CPU: peak live heap above the loaded model,
from glibc mallinfo2, in a separate untimed forward; CUDA: peak allocated), and the ratios
capture/floor and eager/floor from the same run; writes them to --out (JSON).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

# Real widths and head counts; layer counts cut down (the cost per layer is what compares).
SHAPES: dict[str, dict[str, dict[str, Any]]] = {
    "qwen2_5_vl": {  # Qwen2.5-VL-3B-Instruct
        "text_config": {
            "hidden_size": 2048,
            "intermediate_size": 11008,
            "num_attention_heads": 16,
            "num_key_value_heads": 2,
            "num_hidden_layers": 4,
            "vocab_size": 151936,
            "head_dim": 128,
            "rope_parameters": {"rope_type": "default", "mrope_section": [16, 24, 24], "rope_theta": 1000000.0},
        },
        "vision_config": {
            "hidden_size": 1280,
            "intermediate_size": 3420,
            "num_heads": 16,
            "depth": 4,
            "out_hidden_size": 2048,
            "fullatt_block_indexes": [3],
        },
    },
    "qwen2_5_vl_7b": {  # Qwen2.5-VL-7B-Instruct, full depth (for the GPU check)
        "text_config": {
            "hidden_size": 3584,
            "intermediate_size": 18944,
            "num_attention_heads": 28,
            "num_key_value_heads": 4,
            "num_hidden_layers": 28,
            "vocab_size": 152064,
            "head_dim": 128,
            "rope_parameters": {"rope_type": "default", "mrope_section": [16, 24, 24], "rope_theta": 1000000.0},
        },
        "vision_config": {
            "hidden_size": 1280,
            "intermediate_size": 3420,
            "num_heads": 16,
            "depth": 32,
            "out_hidden_size": 3584,
            "fullatt_block_indexes": [7, 15, 23, 31],
        },
    },
    "deepseek_vl": {  # DeepSeek-VL-1.3B
        "text_config": {
            "hidden_size": 2048,
            "intermediate_size": 5632,
            "num_attention_heads": 16,
            "num_key_value_heads": 16,
            "num_hidden_layers": 4,
            "vocab_size": 102400,
            "head_dim": 128,
        },
        "vision_config": {
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "num_attention_heads": 16,
            "num_hidden_layers": 4,
        },
    },
}
ADAPTER_OF = {"qwen2_5_vl_7b": "qwen2_5_vl"}
"""Shape presets that are not adapter names."""
SIZES = ("448x448", "1380x1176")
MODES = ("floor", "capture", "eager")
CAPTION = "a red circle on the left and a blue square on the right above the grass"


class _MallInfo2(ctypes.Structure):
    _fields_: ClassVar[list[tuple[str, type]]] = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _heap_in_use() -> Callable[[], int]:
    """Bytes the C heap has handed out and not taken back (glibc ``mallinfo2``), else RSS.

    torch frees CPU tensors straight back to malloc, so this is the live tensor memory; RSS
    also counts freed memory the allocator keeps, which made peaks swing by +-30% run to run.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
    except (OSError, AttributeError):
        page = os.sysconf("SC_PAGE_SIZE")

        def rss() -> int:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * page

        return rss

    def in_use() -> int:
        info = libc.mallinfo2()
        return int(info.uordblks + info.hblkhd)

    return in_use


class PeakMemory:
    """Samples the process's live heap every half millisecond; ``peak`` is above the start."""

    def __init__(self) -> None:
        self._read = _heap_in_use()
        self.base = self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._read())
            time.sleep(0.0005)

    def __enter__(self) -> PeakMemory:
        self.base = self.peak = self._read()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def reset(self) -> None:
        """Start a new peak from the current heap (for peaks over successive windows)."""
        self.peak = self._read()

    @property
    def extra(self) -> int:
        return self.peak - self.base


def build(backbone: str, mode: str, dtype: Any, device: str) -> tuple[Any, Any]:
    import torch

    from vlm_adapters import get_adapter
    from vlm_adapters.pipeline import FrozenLMM

    adapter_cls = get_adapter(ADAPTER_OF.get(backbone, backbone))
    config = adapter_cls.tiny_config()
    for part, values in SHAPES[backbone].items():
        sub = getattr(config, part)
        for key, value in values.items():
            setattr(sub, key, value)
        if getattr(sub, "layer_types", None) is not None:  # one entry per decoder layer
            sub.layer_types = [sub.layer_types[0]] * sub.num_hidden_layers
    if hasattr(config, "vocab_size") and "vocab_size" in SHAPES[backbone]["text_config"]:
        config.vocab_size = SHAPES[backbone]["text_config"]["vocab_size"]
    # Qwen: the 1280-token budget the model cards suggest (max_pixels 28*28*1280), as in docs/performance.md;
    # the released preprocessor config allows 16384 tokens, which the tiny processor mirrors by default.
    budget = {"max_pixels": 28 * 28 * 1280} if config.model_type.startswith("qwen") else {}
    adapter = adapter_cls(config, adapter_cls.tiny_processor(config, **budget))
    kwargs = {"attn_implementation": "eager"} if mode == "eager" else {}
    torch.manual_seed(0)
    with torch.device(device):  # initialise on the target device (a 7B init on the CPU takes minutes)
        model = adapter.model_class().from_config(config, dtype=dtype, **kwargs).eval()
    return FrozenLMM(model, adapter), adapter


def worker(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from PIL import Image

    from vlm_adapters.testing import smooth_image

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    dtype = getattr(torch, args.dtype)
    lmm, adapter = build(args.backbone, args.mode, dtype, args.device)
    h, w = (int(v) for v in args.size.split("x"))
    image: Image.Image = smooth_image(h, w, seed=1)
    batch = adapter.prepare([image], [adapter.format_prompt("describe the image .", answer=CAPTION)])
    inputs = batch.to(args.device, dtype).inputs
    cuda = args.device.startswith("cuda")

    def once() -> None:
        with torch.no_grad():
            if args.mode == "floor":
                lmm.model(**inputs, logits_to_keep=1, use_cache=False)
            elif args.mode == "capture":
                lmm(batch)
            else:
                lmm.model(**inputs, output_attentions=True, output_hidden_states=True, use_cache=False)
        if cuda:
            torch.cuda.synchronize()

    once()  # warm-up
    times = []
    for _ in range(args.reps):  # timed without the memory sampler (it takes the GIL)
        start = time.perf_counter()
        once()
        times.append(time.perf_counter() - start)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        once()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        with PeakMemory() as memory:
            once()
        peak = memory.extra
    queries = int(lmm.default_queries(batch, 0).numel())
    return {
        "backbone": args.backbone,
        "size": args.size,
        "mode": args.mode,
        "device": args.device,
        "dtype": args.dtype,
        "seq_len": int(batch.input_ids.shape[1]),
        "image_tokens": batch.geometries[0][0].num_image_tokens,
        "queries": queries,
        "median_s": statistics.median(times),
        "times_s": times,
        "peak_bytes": int(peak),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", nargs="+", default=["qwen2_5_vl", "deepseek_vl"], choices=list(SHAPES))
    parser.add_argument("--sizes", nargs="+", default=list(SIZES))
    parser.add_argument("--modes", nargs="+", default=list(MODES))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("bench/results-cpu.json"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--backbone", help=argparse.SUPPRESS)
    parser.add_argument("--size", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    rows: list[dict[str, Any]] = []
    for backbone in args.backbones:
        for size in args.sizes:
            per_mode: dict[str, dict[str, Any]] = {}
            for mode in args.modes:
                cmd = [
                    sys.executable,
                    __file__,
                    "--worker",
                    "--backbone",
                    backbone,
                    "--size",
                    size,
                    "--mode",
                    mode,
                    "--reps",
                    str(args.reps),
                    "--dtype",
                    args.dtype,
                    "--device",
                    args.device,
                ]
                done = subprocess.run(cmd, env=env, capture_output=True, text=True)
                if done.returncode != 0:
                    raise SystemExit(f"{backbone} {size} {mode} failed:\n{done.stderr[-3000:]}")
                per_mode[mode] = json.loads(done.stdout.strip().splitlines()[-1])
                r = per_mode[mode]
                print(
                    f"{backbone:12s} {size:10s} {mode:8s} seq={r['seq_len']:5d} q={r['queries']:3d} "
                    f"median={r['median_s']:.3f}s peak={r['peak_bytes'] / 2**20:8.1f} MiB",
                    flush=True,
                )
            floor = per_mode.get("floor")
            if floor:
                for r in per_mode.values():
                    r["time_vs_floor"] = r["median_s"] / floor["median_s"]
                    r["memory_vs_floor"] = r["peak_bytes"] / max(floor["peak_bytes"], 1)
                summary = "  ".join(
                    f"{m}/floor: time {r['time_vs_floor']:.2f}x memory {r['memory_vs_floor']:.2f}x"
                    for m, r in per_mode.items()
                    if m != "floor"
                )
                print(f"{backbone:12s} {size:10s} {summary}", flush=True)
            rows.extend(per_mode.values())
    import platform

    import torch
    import transformers

    meta = {
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": args.device,
        "dtype": args.dtype,
        "reps": args.reps,
    }
    args.out.write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
