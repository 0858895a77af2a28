"""The bad-input corpus on every registered adapter: how many cases, and how each ended.

For each adapter (and each tiny variant that changes the layout, e.g. Gemma 3 with pan-and-scan)
the kit's corpus (:mod:`vlm_adapters.testing.corpus`) runs every single mutation on every sample
format, then ``--chains`` random chains of 2-3 mutations, with a fixed seed. Each case is
``refused`` (a typed ``VisionInputError``), ``accepted`` (a batch the oracle and the stock model
accept), ``crash`` (any other exception) or ``silent`` (a mistake accepted, or a batch the oracle
rejects). Mistakes an adapter declares unobservable (its contract class's
``unobservable_mistakes``) are counted apart as ``unobservable``.

```bash
python bench/corpus_report.py        # writes bench/results-corpus.json and docs/corpus.png
```
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VARIANTS = {"gemma3": [None, "gemma3_pan_and_scan"]}
"""Tiny variants with another view layout; every other adapter runs its default tiny model."""
UNOBSERVABLE = {("gemma3", None): {"sizes_swapped"}, ("gemma3", "gemma3_pan_and_scan"): {"sizes_swapped"}}
"""As the contract classes in tests/ declare them (see docs/gemma3.md): the corpus's 60x90 image gets no
crops, so with pan-and-scan on it is one stretched view too."""


def run_one(name: str, variant: str | None, chains: int) -> dict[str, Any]:
    from vlm_adapters import get_adapter
    from vlm_adapters.testing.corpus import run_corpus

    adapter = get_adapter(name).from_tiny(variant)
    start = time.perf_counter()
    report = run_corpus(adapter, adapter.load_model(seed=0), chains=chains)
    counts = report.counts
    unobservable = len(report.failures) - len(report.failures_except(UNOBSERVABLE.get((name, variant), set())))
    return {
        "adapter": name if variant is None else f"{name} ({variant})",
        "cases": len(report.outcomes),
        "refused": counts["refused"],
        "accepted": counts["accepted"],
        "unobservable": unobservable,
        "crash": counts["crash"],
        "silent": counts["silent"] - unobservable,
        "seconds": round(time.perf_counter() - start, 1),
    }


def draw(rows: list[dict[str, Any]], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 0.45 * len(rows) + 1.6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    names = [r["adapter"] for r in rows]
    left = [0] * len(rows)
    colours = {
        "refused": "#4477aa",
        "accepted": "#66ccee",
        "unobservable": "#ccbb44",
        "crash": "#ee6677",
        "silent": "#aa3377",
    }
    for kind, colour in colours.items():
        values = [r[kind] for r in rows]
        total = sum(values)
        ax.barh(names, values, left=left, color=colour, label=f"{kind} ({total})")
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.invert_yaxis()
    ax.set_xlabel("corpus cases")
    total = sum(r["cases"] for r in rows)
    ax.set_title(
        f"Bad-input corpus: {total} cases, {sum(r['crash'] for r in rows)} crashes, "
        f"{sum(r['silent'] for r in rows)} silent acceptances"
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chains", type=int, default=100)
    parser.add_argument("--out", type=Path, default=HERE / "results-corpus.json")
    parser.add_argument("--figure", type=Path, default=HERE.parent / "docs" / "corpus.png")
    parser.add_argument("--redraw", action="store_true", help="only draw the figure from --out's results")
    args = parser.parse_args()
    if args.redraw:
        draw(json.loads(args.out.read_text())["rows"], args.figure)
        return
    from vlm_adapters.registry import list_adapters

    rows = []
    for info in list_adapters():
        for variant in VARIANTS.get(info.name, [None]):
            row = run_one(info.name, variant, args.chains)
            rows.append(row)
            print(json.dumps(row), flush=True)
    totals = {k: sum(r[k] for r in rows) for k in ("cases", "refused", "accepted", "unobservable", "crash", "silent")}
    print("total", json.dumps(totals))
    args.out.write_text(json.dumps({"chains": args.chains, "rows": rows, "total": totals}, indent=2) + "\n")
    draw(rows, args.figure)
    print(f"wrote {args.out} and {args.figure}")


if __name__ == "__main__":
    main()
