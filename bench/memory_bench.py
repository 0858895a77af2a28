"""Peak memory of ``vlm-adapters run`` against the size of the original image.

Each size runs in a fresh process: a smooth synthetic photo is written as JPEG, then ``run``
(tiny default model, every overlay and the contact sheet) processes it, and the process reports
its peak resident memory (``ru_maxrss``). The baseline is the smallest size, in the same run; the
table gives each size's peak, its ratio to the baseline, its growth per original pixel, and the
peak of a second process that only decodes the image and runs the stock processor on it (what
any pipeline pays for the photo): ``run`` minus that is what the maps, overlays and model add.

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
from PIL import Image
Image.MAX_IMAGE_PIXELS = None
path, out, backbone, mode = sys.argv[1:5]
text = "the red circle and the blue square"
if mode == "run":
    from vlm_adapters.cli import main
    code = main(["run", "--backbone", backbone, "--image", path, "--text", text, "--out", out])
else:  # decode the image and run the stock processor on it, nothing else: what any pipeline pays
    from vlm_adapters import get_adapter
    from vlm_adapters.images import open_image
    adapter = get_adapter(backbone).from_tiny()
    adapter.prepare([open_image(path)], [adapter.format_prompt("describe the image .", answer=text)])
    code = 0
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


def peak_mib(backbone: str, image: Path, out: Path, mode: str) -> float:
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(image), str(out), backbone, mode],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{mode} failed on {image.name}: {done.stderr[-2000:]}")
    return round(json.loads(lines[-1])["peak_rss_kib"] / 1024, 1)


def measure(backbone: str, height: int, width: int, work: Path) -> dict[str, object]:
    image = work / f"photo_{height}x{width}.jpg"
    write_photo(image, height, width)
    run = peak_mib(backbone, image, work / f"out_{height}x{width}", "run")
    prepare = peak_mib(backbone, image, work / f"out_{height}x{width}", "prepare")
    return {
        "size": [height, width],
        "pixels": height * width,
        "peak_rss_mib": run,
        "decode_and_processor_mib": prepare,
        "run_above_decode_and_processor_mib": round(run - prepare, 1),
        "decoded_rgb_mib": round(3 * height * width / 2**20, 1),
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
    print(
        f"{'image':>12} {'run peak':>12} {'ratio':>6} {'decode+processor':>17} {'run - that':>11} {'growth B/px':>12}"
    )
    for row in rows:
        h, w = row["size"]  # type: ignore[misc]
        growth = row["growth_bytes_per_pixel"]
        print(
            f"{h:>5}x{w:<6} {row['peak_rss_mib']:>8} MiB {row['ratio_to_baseline']:>5}x "
            f"{row['decode_and_processor_mib']:>13} MiB {row['run_above_decode_and_processor_mib']:>7} MiB"
            f" {'-' if growth is None else growth:>12}"
        )
    info = {"backbone": args.backbone, "python": platform.python_version(), "machine": platform.machine()}
    args.out.write_text(json.dumps({"info": info, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
