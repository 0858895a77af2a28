"""Wall time of each fast CLI command, with the import-time breakdown that explains it.

Each command runs ``--repeat`` times in a fresh process (``python -m vlm_adapters ...``); the
median is reported with its ratio to the baseline measured in the same run: a bare interpreter
start (``python -c pass``). Two reference rows show what the commands avoid: importing torch,
and torch + transformers + a stock processor class (what every command paid before the CLI
loaded lazily). One more run per command with ``python -X importtime`` gives the top-level
packages by import time.

```bash
python bench/cli_startup_bench.py            # writes bench/results-cli-startup.json
```
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASELINE = ("python -c pass", [sys.executable, "-c", "pass"])
REFERENCES = [
    ("import torch", [sys.executable, "-c", "import torch"]),
    (
        "import torch, transformers processors",
        [sys.executable, "-c", "import torch, transformers; transformers.Qwen2VLImageProcessor"],
    ),
]
COMMANDS = [
    ["--help"],
    ["--version"],
    ["list"],
    ["list", "--json"],
    ["run", "--help"],
    ["inspect", "deepseek_vl", "--no-cache"],
    ["inspect", "deepseek_vl"],
    ["inspect", "qwen2_5_vl", "--image-size", "427x640", "--no-cache"],
    ["inspect", "qwen2_5_vl", "--image-size", "427x640"],
    ["inspect", "qwen2_5_vl", "--image-size", "300x1200"],
    ["inspect", "llava_next", "--image-size", "427x640"],
]
WARM_UP = [["inspect", "deepseek_vl"], ["inspect", "qwen2_5_vl"], ["inspect", "llava_next", "--image-size", "427x640"]]
"""Asked once before timing, in the bench's own cache folder: the plain ``inspect`` rows are then
answered from the cache (``qwen2_5_vl 300x1200`` computes a size never asked for from the stored
spec); the ``--no-cache`` rows show what a first question costs."""


CACHE = tempfile.mkdtemp(prefix="vlm-adapters-bench-cache-")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VLM_ADAPTERS_CACHE": CACHE}


def wall_time(argv: list[str], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=ENV)
        times.append(time.perf_counter() - start)
    return times


def import_breakdown(argv: list[str], top: int) -> list[tuple[str, float]]:
    """Self import time summed per top-level package, largest first (seconds)."""
    done = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], capture_output=True, text=True, env=ENV)
    per_package: dict[str, float] = defaultdict(float)
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = line[len("import time:") :].split("|", 2)
        per_package[name.strip().split(".")[0]] += int(self_us) / 1e6
    return sorted(per_package.items(), key=lambda kv: -kv[1])[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--top", type=int, default=5, help="packages shown per command")
    parser.add_argument("--out", type=Path, default=HERE / "results-cli-startup.json")
    args = parser.parse_args()

    rows = []
    for argv in WARM_UP:
        subprocess.run([sys.executable, "-m", "vlm_adapters", *argv], check=True, capture_output=True, env=ENV)
    base = statistics.median(wall_time(BASELINE[1], args.repeat))
    cases = [(name, argv) for name, argv in REFERENCES] + [
        ("vlm-adapters " + " ".join(c), [sys.executable, "-m", "vlm_adapters", *c]) for c in COMMANDS
    ]
    print(f"{'command':64s} {'median':>8s} {'x base':>7s}  top imports (self time per package)")
    print(f"{BASELINE[0]:64s} {base:7.3f}s {1.0:6.1f}x")
    for name, argv in cases:
        median = statistics.median(wall_time(argv, args.repeat))
        breakdown = import_breakdown(argv, args.top)
        rows.append({"command": name, "median_s": round(median, 4), "ratio": round(median / base, 2),
                     "imports_s": {k: round(v, 4) for k, v in breakdown}})  # fmt: skip
        shown = ", ".join(f"{k} {v:.2f}s" for k, v in breakdown)
        print(f"{name:64s} {median:7.3f}s {median / base:6.1f}x  {shown}")
    result = {
        "baseline": {"command": BASELINE[0], "median_s": round(base, 4)},
        "repeat": args.repeat,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "rows": rows,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
