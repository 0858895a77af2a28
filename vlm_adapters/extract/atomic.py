"""Writes that readers (and a resumed run) see whole or not at all: a temporary file, then a rename."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` into a hidden temporary file beside ``path``, synced to disk, then renamed onto ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    atomic_write(path, write)


def append_line(path: Path, line: str) -> None:
    """Append one line in one write, synced: a kill leaves at most a torn last line (see :func:`iter_lines`)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(line if line.endswith("\n") else line + "\n")
        f.flush()
        os.fsync(f.fileno())


def cut_torn_line(path: Path) -> None:
    """Cut off a torn last line (a kill during :func:`append_line`), so the next append starts clean."""
    if not path.exists():
        return
    with open(path, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        end = size
        while end > 0:
            start = max(end - 4096, 0)
            f.seek(start)
            newline = f.read(end - start).rfind(b"\n")
            if newline >= 0:
                end = start + newline + 1
                break
            end = start
        if end < size:
            f.truncate(end)


def iter_lines(path: Path) -> Iterator[str]:
    """Complete, non-blank lines of a file written with :func:`append_line`, streamed; a torn last
    line is left out."""
    if not path.exists():
        return
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.endswith("\n") and line.strip():
                yield line.rstrip("\n")
