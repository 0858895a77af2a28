"""Peak memory of ``vlm-adapters run`` against the size of the original image.

Each size runs in a fresh process: a smooth synthetic photo is written as JPEG, then ``run``
(tiny default model, every overlay and the contact sheet) processes it, and the process reports
its peak resident memory (``ru_maxrss``). The baseline is the smallest size, in the same run; the
table gives each size's peak, its ratio to the baseline, and the peak above what merely decoding
the image costs (``3 bytes x pixels`` for RGB), per original pixel.

Maps and overlays are drawn at display size (``vlm_adapters.overlay.DISPLAY_MAX_SIDE``) and the
model sees its own input size, so the growth should be the decoded image and little else.
Images above PIL's decompression-bomb limit are refused by ``run``; this benchmark lifts the
limit in its worker (``PIL.Image.MAX_IMAGE_PIXELS = None``), as a user who trusts the file would.

```bash
python bench/memory_bench.py                 # writes bench/results-memory.json
```
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIZES = [(900, 1200), (4500, 6000), (9000, 12000)]  # (height, width); the first is the baseline

WORKER = r"""
import json, resource, sys
import numpy as np
from PIL import Image
Image.MAX_IMAGE_PIXELS = None
from vlm_adapters.cli import main
path, out, backbone = sys.argv[1:4]
code = main(["run", "--backbone", backbone, "--image", path, "--text", "the red circle and the blue square",
             "--out", out])
print(json.dumps({"rc": code, "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def write_photo(path: Path, height: int, width: int) -> None:
    """A smooth colour field (compresses well, decodes to a full ``height x width`` RGB image)."""
    import numpy as np
    from PIL import Image

    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    rgb = np.empty((height, width, 3), np.uint8)
    rgb[..., 0] = (255 * y).astype(np.uint8)
    rgb[..., 1] = (255 * x).astype(np.uint8)
    rgb[..., 2] = (255 * (1 - y) * x).astype(np.uint8)
    Image.fromarray(rgb).save(path, quality=90)


def measure(backbone: str, height: int, width: int, work: Path) -> dict[str, object]:
    image = work / f"photo_{height}x{width}.jpg"
    write_photo(image, height, width)
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(image), str(work / f"out_{height}x{width}"), backbone],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"run failed on {height}x{width}: {done.stderr[-2000:]}")
    result = json.loads(lines[-1])
    peak = result["peak_rss_kib"] * 1024
    pixels = height * width
    return {
        "size": [height, width],
        "pixels": pixels,
        "peak_rss_mib": round(peak / 2**20, 1),
        "decoded_rgb_mib": round(3 * pixels / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="qwen2_5_vl")
    parser.add_argument("--out", type=Path, default=HERE / "results-memory.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(args.backbone, h, w, Path(tmp)) for h, w in SIZES]
    base = rows[0]
    for row in rows:
        row["ratio_to_baseline"] = round(float(row["peak_rss_mib"]) / float(base["peak_rss_mib"]), 2)  # type: ignore[arg-type]
        extra = (float(row["peak_rss_mib"]) - float(base["peak_rss_mib"])) * 2**20  # type: ignore[arg-type]
        row["growth_bytes_per_pixel"] = (
            round(extra / (int(row["pixels"]) - int(base["pixels"])), 1) if row is not base else None
        )  # type: ignore[arg-type]
    print(f"{'image':>12} {'peak RSS':>10} {'ratio':>6} {'decoded RGB':>12} {'growth B/px':>12}")
    for row in rows:
        h, w = row["size"]  # type: ignore[misc]
        growth = row["growth_bytes_per_pixel"]
        print(
            f"{h:>5}x{w:<6} {row['peak_rss_mib']:>8} MiB {row['ratio_to_baseline']:>5}x {row['decoded_rgb_mib']:>8} MiB"
            f" {'-' if growth is None else growth:>12}"
        )
    info = {"backbone": args.backbone, "python": platform.python_version(), "machine": platform.machine()}
    args.out.write_text(json.dumps({"info": info, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
