"""Remembered ``inspect`` answers: asking again about the same model costs no transformers import.

A spec is built from the stock config and processor classes, and importing any of them takes
seconds (transformers imports torch). What ``inspect`` prints depends only on the checkpoint's
files, the code that reads them and the installed versions, so the answer is stored under a key
made of exactly those and reused while none of them changes. A stored spec is read back through
its registered kind, so the geometry of a new image size is computed from it; kinds whose
geometry reuses transformers helpers import those then.

Remembered: the tiny defaults and local checkpoint folders. Not remembered: hub ids (their files
can change upstream without a local trace) and failures (an error is always raised afresh).
The folder is ``$VLM_ADAPTERS_CACHE``, else ``$XDG_CACHE_HOME/vlm-adapters``, else
``~/.cache/vlm-adapters``; deleting it is always safe.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from .registry import default_registry

CACHE_ENV = "VLM_ADAPTERS_CACHE"
FORMAT = 1
"""Bumped when the stored layout changes; older entries are then ignored."""
VERSIONED = ("vlm-adapters", "transformers", "tokenizers", "pydantic")
"""Distributions whose upgrade may change a spec or its JSON."""


def cache_root() -> Path:
    """Where remembered answers live (see the module docstring)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "vlm-adapters"


def _stamp(path: Path) -> list[Any]:
    st = path.stat()
    return [str(path), st.st_size, st.st_mtime_ns]


def checkpoint_stamp(model: str | None) -> list[Any] | None:
    """Name, size and modification time of every file in a checkpoint folder; ``[]`` for the tiny
    default; ``None`` when the model is not a local folder and so cannot be remembered."""
    if model is None:
        return []
    folder = Path(model).expanduser()
    if not folder.is_dir():
        return None
    return [_stamp(p.resolve()) for p in sorted(folder.iterdir()) if p.is_file()]


def code_stamp(top_level: str) -> list[Any]:
    """Size and modification time of every source file of an importable package, found without
    importing it: an edited plugin (an editable install) invalidates what it answered."""
    found = importlib.util.find_spec(top_level)
    if found is None:
        return [top_level, None]
    if found.submodule_search_locations is None:
        return [_stamp(Path(found.origin))] if found.origin else [top_level, None]
    return [_stamp(p) for root in found.submodule_search_locations for p in sorted(Path(root).rglob("*.py"))]


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _adapter_package(name: str) -> str | None:
    """The top-level package that holds adapter ``name``, read from its registration (no import)."""
    for info in default_registry().adapters():
        if info.name == name and info.status == "loaded":
            module = info.ref.target.partition(":")[0] if info.ref is not None else getattr(info.cls, "__module__", "")
            return module.split(".")[0] or None
    return None


def adapter_code_stamp(name: str) -> list[Any] | None:
    """What the answer for adapter ``name`` was computed with: the core's and the adapter's source
    files, and the installed versions; ``None`` when the adapter is not registered now."""
    package = _adapter_package(name)
    if package is None:
        return None
    return [
        {d: _version(d) for d in VERSIONED},
        code_stamp("vlm_adapters"),
        code_stamp(package) if package != "vlm_adapters" else [],
    ]


@dataclass(frozen=True)
class InspectEntry:
    """One remembered answer: a file named by the hash of its key."""

    path: Path
    key: dict[str, Any]

    @classmethod
    def for_command(cls, backbone: str | None, model: str | None) -> InspectEntry | None:
        """The entry for ``inspect [backbone] [--model model]``, or ``None`` if it cannot be remembered."""
        checkpoint = checkpoint_stamp(model)
        if checkpoint is None:
            return None
        registry = default_registry()
        key = {
            "format": FORMAT,
            "backbone": backbone,
            "model": str(Path(model).expanduser().resolve()) if model is not None else None,
            "checkpoint": checkpoint,
            "plugins": sorted([p.name, p.distribution, p.version, p.status] for p in registry.plugins()),
        }
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
        return cls(cache_root() / "inspect" / f"{digest}.json", key)

    def load(self) -> dict[str, Any] | None:
        """The stored answer, if it exists, is readable, and was computed by the code installed now."""
        try:
            stored = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(stored, dict) or stored.get("key") != json.loads(json.dumps(self.key)):
            return None
        data = stored.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("adapter"), str):
            return None
        if stored.get("code") != json.loads(json.dumps(adapter_code_stamp(data["adapter"]))):
            return None
        return stored

    def save(self, data: dict[str, Any], geometries: dict[str, Any]) -> None:
        """Write atomically; a cache that cannot be written only costs the next call its speed."""
        stored = {"key": self.key, "code": adapter_code_stamp(data["adapter"]), "data": data, "geometries": geometries}
        tmp: Path | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-", suffix=".json")
            tmp = Path(name)
            with os.fdopen(fd, "w") as f:
                json.dump(stored, f)
            os.replace(tmp, self.path)
        except OSError:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
