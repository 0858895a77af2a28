"""Extracted features as a map-style torch ``Dataset``: random access by index or id, tensors loaded lazily.

```python
from vlm_adapters.features import ExtractedFeatures

features = ExtractedFeatures("runs/extract")     # the ok samples of an extract output folder
sample = features[0]                             # or features.by_id("coco-42-0")
sample["maps"][0][0]       # image 0, view 0: [K, layers*heads, rows, cols] phrase maps
sample["hidden"]           # [layers + 1, tokens, dim] at the phrase tokens
sample["object_ids"]       # [tokens]: which phrase each of those tokens belongs to
sample["geometries"][0]    # ImageGeometry: to_token_grid(masks), to_image(maps)
ExtractedFeatures("runs/extract", keys=("maps",))  # read only the maps from the shards
```

Only the index is read up front (a byte offset per sample); a sample's record and its tensors
are read when it is asked for, and only the tensors of the chosen ``keys`` (safetensors reads a
tensor without reading its shard). Samples the extraction refused are in :attr:`errors`.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch.utils.data import Dataset

from .errors import VisionInputError
from .geometry import ImageGeometry

KEYS = ("maps", "fused", "hidden", "object_ids", "token_ids")
"""Tensor groups a sample can load (see ``docs/extract.md`` for their shapes)."""


class FeaturesError(VisionInputError):
    """An extraction folder that cannot be read, or a sample or key it does not have."""


class ExtractedFeatures(Dataset[dict[str, Any]]):
    """The samples of an ``extract`` output folder, in manifest order."""

    def __init__(self, folder: str | Path, keys: Sequence[str] | None = None, *, max_open_shards: int = 8) -> None:
        self.folder = Path(folder)
        index = self.folder / "index.jsonl"
        if not index.is_file():
            status = "no extraction"
            if (self.folder / "run.json").is_file():
                status = f"an extraction in state {json.loads((self.folder / 'run.json').read_text()).get('status')!r}"
            raise FeaturesError(
                "no finished extraction in this folder",
                found=f"{self.folder}: {status}",
                expected="a folder written by `vlm-adapters extract` with index.jsonl",
                fix="let the extraction finish, or run it again with --resume",
            )
        self.keys = self._check_keys(keys)
        self.run: dict[str, Any] = json.loads((self.folder / "run.json").read_text(encoding="utf-8"))
        self._offsets: list[int] = []
        self._ids: dict[str, int] = {}
        self.errors: list[dict[str, Any]] = []
        """Index records of the samples the extraction refused (id, typed error, found/expected/fix)."""
        with open(index, "rb") as f:
            offset = 0
            for line in f:
                record = json.loads(line)
                if record["status"] == "ok":
                    self._ids[str(record["id"])] = len(self._offsets)
                    self._offsets.append(offset)
                else:
                    self.errors.append(record)
                offset += len(line)
        self._max_open = max_open_shards
        self._shards: OrderedDict[str, Any] = OrderedDict()
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self._offsets)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Sample ``index``: its record (id, text, phrases, geometries) and the tensors of :attr:`keys`."""
        record = self.record(index)
        sample: dict[str, Any] = {k: record.get(k) for k in ("id", "position", "image", "text", "phrases", "objects")}
        sample["geometries"] = [ImageGeometry.model_validate(g) for g in record["geometries"]]
        tensors = record["tensors"]
        shard = self._shard(record["shard"]) if self.keys else None

        def load(name: str) -> torch.Tensor:
            return shard.get_tensor(tensors[name]["key"])  # type: ignore[union-attr]

        views = [len(g.views) for g in sample["geometries"]]
        if "maps" in self.keys:
            sample["maps"] = [[load(f"maps.{i}.{v}") for v in range(n)] for i, n in enumerate(views)]
        if "fused" in self.keys:
            sample["fused"] = [load(f"fused.{i}") if f"fused.{i}" in tensors else None for i in range(len(views))]
        for name in ("hidden", "object_ids", "token_ids"):
            if name in self.keys and name in tensors:
                sample[name] = load(name)
        return sample

    def by_id(self, sample_id: str) -> dict[str, Any]:
        return self[self.index_of(sample_id)]

    def index_of(self, sample_id: str) -> int:
        found = self._ids.get(str(sample_id))
        if found is None:
            refused = [e for e in self.errors if str(e["id"]) == str(sample_id)]
            raise FeaturesError(
                "no such sample in this extraction",
                found=repr(sample_id) + (f" (refused: {refused[0]['error']['message']})" if refused else ""),
                expected=f"one of the {len(self)} extracted ids",
                fix="see .errors for the samples the extraction refused",
            )
        return found

    def record(self, index: int) -> dict[str, Any]:
        """The index record of sample ``index`` (read from disk when asked)."""
        if not isinstance(index, int) or isinstance(index, bool) or not -len(self) <= index < len(self):
            raise FeaturesError(
                "sample index out of range",
                found=repr(index),
                expected=f"an int in {-len(self)}..{len(self) - 1}",
                fix="index from 0 to len(features) - 1, or use by_id",
            )
        with open(self.folder / "index.jsonl", "rb") as f:
            f.seek(self._offsets[index])
            record: dict[str, Any] = json.loads(f.readline())
        return record

    def __getstate__(self) -> dict[str, Any]:
        """Picklable for DataLoader workers (spawned ones too): open shard handles are not sent."""
        return {**self.__dict__, "_shards": OrderedDict()}

    def _shard(self, name: str) -> Any:
        if os.getpid() != self._pid:  # a DataLoader worker: open its own handles
            self._shards.clear()
            self._pid = os.getpid()
        handle = self._shards.pop(name, None)
        if handle is None:
            handle = safe_open(str(self.folder / name), framework="pt")
            while len(self._shards) >= self._max_open:
                self._shards.popitem(last=False)
        self._shards[name] = handle
        return handle

    @staticmethod
    def _check_keys(keys: Sequence[str] | None) -> tuple[str, ...]:
        if keys is None:
            return KEYS
        chosen = (keys,) if isinstance(keys, str) else tuple(keys)
        unknown = [k for k in chosen if k not in KEYS]
        if unknown:
            raise FeaturesError(
                "unknown feature keys", found=unknown, expected=f"some of {list(KEYS)}", fix="pick keys from that list"
            )
        return chosen
