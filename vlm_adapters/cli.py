"""vlm-adapters: list adapters, inspect a backbone's vision input, run the word-to-image attention job.

Startup stays light: this module imports neither torch nor transformers (``--help``,
``--version`` and ``list`` never load them); ``run`` and ``extract`` import what they need when
they execute, and ``inspect`` only for a model it was not asked about before (or a hub id, or a
new image size of a kind whose geometry uses transformers helpers: see ``inspect_cache``). Bad
input is one line on stderr and exit status 2; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from . import __version__
from .errors import VlmAdaptersError
from .run import add_run_parser

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except empty ones (None, False) that would only say "None"."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False) or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors, like every other bad input of the CLI."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")


def parse_size(text: str) -> tuple[int, int]:
    """``"480x640"`` -> (480, 640): height first, like every size in this package."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 480x640, got {text!r}") from None
    return h, w


def cmd_list(args: argparse.Namespace) -> int:
    from .registry import list_adapters

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
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header) - 1)]
    for row in table:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + str(row[-1]))
    return 0


def as_json(value: Any) -> Any:
    """A JSON round trip of ``value`` (tuples become lists), so fresh and remembered answers print alike."""
    return json.loads(json.dumps(value))


def inspect_data(
    name: str | None, model: str | None, image_size: tuple[int, int] | None, remember: bool = False
) -> dict[str, Any]:
    """What ``inspect`` prints: the model's layer and head counts, the spec, one image size's geometry.

    With ``remember`` (the CLI's default) it is answered from the inspect cache when the same model
    was inspected before with the same code, without importing transformers; see
    :mod:`vlm_adapters.inspect_cache`.
    """
    from .inspect_cache import InspectEntry
    from .spec import SpecBase, spec_from_dict

    spec: SpecBase | None = None
    entry = InspectEntry.for_command(name, model) if remember else None
    stored = entry.load() if entry is not None else None
    if stored is None:
        from .checkpoints import bind_adapter, model_summary

        adapter = bind_adapter(name, model)
        spec = adapter.spec
        data: dict[str, Any] = as_json(
            {
                "adapter": adapter.name,
                "config": model_summary(adapter.config),
                "spec": spec.model_dump(mode="json"),
            }
        )
        geometries: dict[str, Any] = {}
    else:
        data, geometries = stored["data"], stored["geometries"]
    changed = stored is None
    if image_size is not None:
        size = f"{image_size[0]}x{image_size[1]}"
        if size not in geometries:
            spec = spec if spec is not None else spec_from_dict(data["spec"])
            geometries[size] = as_json(spec.geometry(image_size).summary())
            changed = True
    if entry is not None and changed:
        entry.save(data, geometries)
    shown = {"adapter": data["adapter"], "model": model or "tiny (random weights)", **data}
    if image_size is not None:
        shown["geometry"] = geometries[f"{image_size[0]}x{image_size[1]}"]
    return shown


def cmd_inspect(args: argparse.Namespace) -> int:
    data = inspect_data(args.name, args.model, args.image_size, remember=not args.no_cache)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"adapter: {data['adapter']}  (model: {data['model']})")
    print("config:")
    for key, value in data["config"].items():
        print(f"  {key}: {value}")
    print("spec:")
    for key, value in data["spec"].items():
        print(f"  {key}: {value}")
    if "geometry" in data:
        print(f"geometry for {args.image_size[0]}x{args.image_size[1]}:")
        for key, value in data["geometry"].items():
            print(f"  {key}: {value}")
    return 0


def build_parser() -> Parser:
    parser = Parser(prog="vlm-adapters", description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    options: dict[str, Any] = {"formatter_class": HelpFormatter, "parents": [common]}

    p = sub.add_parser("list", help="registered adapters and plugin status", **options)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser(
        "inspect", help="a backbone's layer and head counts, vision-input spec, and one image's geometry", **options
    )
    p.add_argument("name", nargs="?", help="adapter name, see: vlm-adapters list (optional with --model)")
    p.add_argument("--model", help="checkpoint folder or hub id (without it: the tiny offline default)")
    p.add_argument("--image-size", type=parse_size, metavar="HxW", help="e.g. 427x640 (height x width)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--no-cache", action="store_true", help="build the answer afresh, without reading or writing the inspect cache"
    )
    p.set_defaults(func=cmd_inspect)

    add_run_parser(sub, **options)
    from .extract.command import add_extract_parser  # light: imports torch only when the command runs

    add_extract_parser(sub, **options)
    return parser


def one_line(exc: BaseException) -> str:
    """``ErrorType: message`` on a single line."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    try:
        return int(args.func(args))
    except VlmAdaptersError as exc:
        if debug:
            raise
        print(f"vlm-adapters: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        if debug:
            raise
        print("vlm-adapters: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if debug:
            raise
        print(f"vlm-adapters: unexpected {one_line(exc)} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
