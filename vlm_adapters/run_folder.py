"""The output folder of ``run``: never clobbered by accident, and never half-written.

* A non-empty folder is refused unless ``--overwrite`` (it must hold a previous run, which is
  deleted) or ``--resume`` (it must hold a run of the same command, whose finished images are
  kept).
* Each image is written into a hidden ``.NNN_name.partial`` folder that is renamed into place
  when all its files are there; ``summary.json`` is replaced atomically after every image. A
  crash or Ctrl-C therefore leaves finished images and a summary that lists exactly them.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import OutputFolderError

SUMMARY = "summary.json"
IMAGE_RECORD = "image.json"
PARTIAL = ".partial"


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never a part."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``key: old -> new`` for every argument that differs."""
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


class RunFolder:
    """``--out`` of one run. :meth:`check` writes nothing; :meth:`open` is the first write."""

    def __init__(self, root: Path, arguments: Mapping[str, Any], *, overwrite: bool = False, resume: bool = False):
        self.root = root
        self.arguments = dict(arguments)
        self.overwrite = overwrite
        self.resume = resume
        self.created = False

    def check(self) -> dict[int, dict[str, Any]]:
        """Refuse a folder this run must not write into; with ``--resume``, the finished images by index."""
        root = self.root
        if root.exists() and not root.is_dir():
            raise OutputFolderError(
                "--out is a file", found=str(root), expected="a folder (new or empty)", fix="pick another --out"
            )
        entries = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
        if not entries:
            return {}
        if not (self.overwrite or self.resume):
            shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise OutputFolderError(
                "--out is not empty",
                found=f"{root} with {len(entries)} entries ({shown})",
                expected="a new or empty folder",
                fix="pick another --out, add --overwrite to replace the run there, or --resume to finish it",
            )
        summary = self._read_summary()
        if self.overwrite:
            return {}
        changed = differences(summary.get("arguments", {}), self.arguments)
        if changed:
            raise OutputFolderError(
                "--resume: --out holds a run of another command",
                found="; ".join(changed),
                expected="the arguments of the run being resumed",
                fix="rerun that command with --resume, or use --overwrite or another --out",
            )
        return self.finished()

    def _read_summary(self) -> dict[str, Any]:
        path = self.root / SUMMARY
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            summary = None
        if not isinstance(summary, dict) or "arguments" not in summary:
            raise OutputFolderError(
                "--out does not hold a vlm-adapters run",
                found=f"{self.root} without a readable {SUMMARY}",
                expected=f"a folder written by `vlm-adapters run` (with {SUMMARY})",
                fix="pick another --out; --overwrite and --resume only touch folders that `run` wrote",
            )
        return summary

    def finished(self) -> dict[int, dict[str, Any]]:
        """Records of the images whose folder is complete (renamed into place with its ``image.json``)."""
        done = {}
        for record_path in sorted(self.root.glob(f"*/{IMAGE_RECORD}")):
            record = json.loads(record_path.read_text(encoding="utf-8"))
            done[int(record["index"])] = record
        return done

    def open(self) -> None:
        """Create the folder (after ``--overwrite``, empty it) and clear leftovers of a killed run."""
        if self.overwrite and self.root.is_dir():
            for child in self.root.iterdir():
                _remove(child)
        self.created = not self.root.exists()
        self.root.mkdir(parents=True, exist_ok=True)
        for child in self.root.iterdir():
            if child.name.startswith(".") and (child.name.endswith(PARTIAL) or child.name.endswith(".tmp")):
                _remove(child)

    @contextmanager
    def image_folder(self, name: str) -> Iterator[Path]:
        """A hidden folder to write one image's files into; renamed to ``name`` when the block ends cleanly."""
        final = self.root / name
        partial = self.root / f".{name}{PARTIAL}"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        try:
            yield partial
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        if final.exists():
            shutil.rmtree(final)
        os.rename(partial, final)

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        atomic_write_text(self.root / SUMMARY, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")

    def discard_if_empty(self) -> bool:
        """Remove a folder this run created and finished nothing in (a run stopped before its first image)."""
        if self.created and self.root.is_dir() and not self.finished():
            shutil.rmtree(self.root)
            return True
        return False


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
