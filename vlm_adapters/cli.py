"""``vlm-adapters``: list adapters, inspect a spec and its geometry, run the grounding job."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from .errors import VlmAdaptersError
from .registry import get_adapter, list_adapters
from .run import add_run_parser


def parse_size(text: str) -> tuple[int, int]:
    """``"480x640"`` -> (480, 640): height first, like every size in this package."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 480x640, got {text!r}") from None
    return h, w


def cmd_list(args: argparse.Namespace) -> int:
    rows = [a.as_dict() for a in list_adapters()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = ("name", "model_types", "spec", "distribution", "version", "status")
    table = [header] + [
        (
            r["name"],
            ",".join(r["model_types"]) or "-",
            r["spec_kind"] or "-",
            r["distribution"],
            r["version"],
            r["status"] if r["status"] == "loaded" else f"failed: {r['error']}",
        )
        for r in rows
    ]
    widths = [max(len(str(row[i])) for row in table[:]) for i in range(len(header) - 1)]
    for row in table:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + str(row[-1]))
    return 0


def inspect_data(name: str, model: str | None, image_size: tuple[int, int] | None) -> dict[str, Any]:
    """What ``inspect`` prints: the spec, and the geometry of one image size."""
    cls = get_adapter(name)
    adapter = cls.from_pretrained(model) if model else cls.from_tiny()
    data: dict[str, Any] = {"adapter": name, "model": model or "tiny", "spec": adapter.spec.model_dump(mode="json")}
    if image_size is not None:
        g = adapter.spec.geometry(image_size)
        data["geometry"] = g.summary()
    return data


def cmd_inspect(args: argparse.Namespace) -> int:
    data = inspect_data(args.name, args.model, args.image_size)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"adapter: {data['adapter']}  (model: {data['model']})")
    for key, value in data["spec"].items():
        print(f"  {key}: {value}")
    if "geometry" in data:
        print(f"geometry for {args.image_size[0]}x{args.image_size[1]}:")
        for key, value in data["geometry"].items():
            print(f"  {key}: {value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vlm-adapters", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="registered adapters and plugin status")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("inspect", help="an adapter's spec, and the geometry of one image size")
    p.add_argument("name", help="adapter name, see `vlm-adapters list`")
    p.add_argument("--model", help="checkpoint folder or hub id (default: the tiny offline config)")
    p.add_argument("--image-size", type=parse_size, metavar="HxW", help="e.g. 427x640 (height x width)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_inspect)

    add_run_parser(sub)
    from .extract.command import add_extract_parser  # light: imports torch only when the command runs

    add_extract_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except VlmAdaptersError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
