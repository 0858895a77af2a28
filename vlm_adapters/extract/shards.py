"""The output folder: safetensors shards of bounded size, per-rank index files, the merged index.

Layout of ``--out``::

    run.json                    backbone, spec, model, versions, arguments, counts
    index.jsonl                 one record per sample, in manifest order (merged at the end)
    index/r000.jsonl            the records of rank 0, appended as its shards land
    shards/r000-00000.safetensors

A shard is written to a temporary file and renamed into place; only then are the records of
its samples appended to the rank's index file, in one synced write. A killed run therefore
leaves complete shards, and index lines that point only at complete shards (a torn last line is
ignored and cut off on resume); samples that were waiting for their shard are simply extracted
again. Error records travel with the next shard, so each index file stays in processing order.
"""

from __future__ import annotations

import heapq
import itertools
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from .atomic import append_line, atomic_write, cut_torn_line, iter_lines

INDEX = "index.jsonl"
INDEX_DIR = "index"
SHARD_DIR = "shards"
RUN = "run.json"
_SHARD = re.compile(r"^r(\d{3,})-(\d{5,})\.safetensors$")


class ShardWriter:
    """Collects the tensors of one rank's samples and writes them out a bounded shard at a time."""

    def __init__(self, folder: Path, rank: int, max_bytes: int) -> None:
        self.folder = folder
        self.rank = rank
        self.max_bytes = max_bytes
        (folder / SHARD_DIR).mkdir(parents=True, exist_ok=True)
        (folder / INDEX_DIR).mkdir(parents=True, exist_ok=True)
        self.index_path = folder / INDEX_DIR / f"r{rank:03d}.jsonl"
        cut_torn_line(self.index_path)
        prefix = f"r{rank:03d}-"
        for stale in (folder / SHARD_DIR).glob(f".{prefix}*.tmp"):
            stale.unlink()  # a shard that was being written when a run was killed
        numbers = [
            int(m.group(2))
            for p in (folder / SHARD_DIR).iterdir()
            if (m := _SHARD.match(p.name)) and int(m.group(1)) == rank
        ]
        self.next_shard = max(numbers, default=-1) + 1
        self.tensors: dict[str, torch.Tensor] = {}
        self.records: list[dict[str, Any]] = []
        self.bytes = 0
        self.shards_written = 0

    def add(self, record: dict[str, Any], tensors: Mapping[str, torch.Tensor]) -> None:
        """Queue one sample: ``tensors`` by name (stored under ``<position>/<name>``) and its record."""
        size = sum(t.numel() * t.element_size() for t in tensors.values())
        if self.tensors and self.bytes + size > self.max_bytes:
            self.flush()
        entries = {}
        for name, tensor in tensors.items():
            key = f"{record['position']}/{name}"
            self.tensors[key] = tensor.detach().to("cpu").contiguous()
            entries[name] = {"key": key, "shape": list(tensor.shape), "dtype": str(tensor.dtype).removeprefix("torch.")}
        self.records.append({**record, "tensors": entries})
        self.bytes += size
        if self.bytes >= self.max_bytes:
            self.flush()

    def add_error(self, record: dict[str, Any]) -> None:
        """Queue a refused sample's record (written with the next shard, or at :meth:`flush`)."""
        self.records.append(record)
        if len(self.records) >= 4096:
            self.flush()

    def flush(self) -> None:
        """Write the queued tensors as one shard, then append the queued records to the rank's index."""
        if self.tensors:
            name = f"r{self.rank:03d}-{self.next_shard:05d}.safetensors"
            tensors = self.tensors
            atomic_write(self.folder / SHARD_DIR / name, lambda tmp: save_file(tensors, str(tmp)))
            self.next_shard += 1
            self.shards_written += 1
            for record in self.records:
                if record.get("status") == "ok":
                    record["shard"] = f"{SHARD_DIR}/{name}"
        if self.records:
            append_line(self.index_path, "".join(json.dumps(r) + "\n" for r in self.records))
        self.tensors, self.records, self.bytes = {}, [], 0


def index_files(folder: Path) -> list[Path]:
    return sorted((folder / INDEX_DIR).glob("r*.jsonl")) if (folder / INDEX_DIR).is_dir() else []


def done_positions(folder: Path) -> set[int]:
    """Manifest positions that already have a record (ok or error) in any rank's index."""
    return {json.loads(line)["position"] for path in index_files(folder) for line in iter_lines(path)}


def merge_index(folder: Path) -> int:
    """Write ``index.jsonl``: every rank's records in manifest order (streamed, not held). Returns the count."""
    streams = [_positioned(path) for path in index_files(folder)]
    count = 0
    last = -1

    def write(tmp: Path) -> None:
        nonlocal count, last
        with open(tmp, "w", encoding="utf-8") as out:
            for position, line in heapq.merge(*streams):
                if position != last:
                    out.write(line + "\n")
                    count += 1
                    last = position

    atomic_write(folder / INDEX, write)
    return count


def _positioned(path: Path) -> Iterator[tuple[int, str]]:
    """A rank's records as (position, line) in order, streamed. A rank file written across runs with
    different numbers of ranks may be out of order; it is then sorted in memory."""

    def position(line: str) -> int:
        return int(json.loads(line)["position"])

    positions = [position(line) for line in iter_lines(path)]
    if all(a < b for a, b in itertools.pairwise(positions)):
        return ((position(line), line) for line in iter_lines(path))
    return iter(sorted(((position(line), line) for line in iter_lines(path)), key=lambda p: p[0]))
