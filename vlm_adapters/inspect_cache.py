"""Remembered ``inspect`` answers: asking again about the same model costs no transformers import.

A spec is built from the stock config and processor classes, and importing any of them takes
seconds (transformers imports torch). What ``inspect`` prints comes from the checkpoint's files,
the code of the installed plugins and the core, and a few libraries, so the answer is stored
under a key made of those and reused while none of them changes. A stored spec is read back
through its registered kind, so the geometry of a new image size is computed from it; kinds whose
geometry reuses transformers helpers import those then.

Remembered: the tiny defaults and local checkpoint folders. Never remembered: hub ids (their files
can change upstream without a local trace), failures (an error is always raised afresh), and
anything whose files cannot be read for the key. The folder is ``$VLM_ADAPTERS_CACHE``, else
``$XDG_CACHE_HOME/vlm-adapters``, else ``~/.cache/vlm-adapters``; deleting it is always safe.
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
FORMAT = 2
"""Bumped when the key or the stored layout changes; older entries then miss."""
VERSIONED = ("vlm-adapters", "transformers", "tokenizers", "pydantic", "huggingface-hub", "torch", "torchvision")
"""Distributions whose upgrade may change a config, a processor, a spec or its JSON."""
HASHED_UP_TO = 64 * 2**20
"""Checkpoint files up to this size are stamped by content (configs, tokenizer files); larger ones
(weights) by size, modification and change time, and inode."""


class Unstampable(Exception):
    """A file the key needs cannot be read: the answer is then computed, not remembered."""


def cache_root() -> Path:
    """Where remembered answers live (see the module docstring)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "vlm-adapters"


def _files(folder: Path, pattern: str) -> list[Path]:
    """Regular files matching ``pattern`` (``*`` or ``**/*.py``), dot-files (editor locks, temp
    files) left out, in a stable order."""
    return sorted(p for p in folder.glob(pattern) if not p.name.startswith(".") and p.is_file())


def file_stamp(path: Path, hash_up_to: int = HASHED_UP_TO) -> list[Any]:
    """What identifies a file's content: a hash when it is small enough to read, else its stat
    (the change time and inode move on every write, whatever a copy does to the modification time)."""
    try:
        st = path.stat()
        if st.st_size <= hash_up_to:
            return [path.name, hashlib.sha256(path.read_bytes()).hexdigest()]
        return [path.name, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
    except OSError as exc:
        raise Unstampable(f"{path}: {exc}") from exc


def checkpoint_stamp(model: str | None) -> list[Any] | None:
    """The stamps of every top-level file of a checkpoint folder (where transformers reads config,
    processor and tokenizer files); ``[]`` for the tiny default; ``None`` when the model is not a
    local folder and so cannot be remembered."""
    if model is None:
        return []
    folder = Path(model).expanduser()
    if not folder.is_dir():
        return None
    try:
        return [file_stamp(p) for p in _files(folder, "*")]
    except OSError as exc:
        raise Unstampable(f"{folder}: {exc}") from exc


def code_stamp(top_level: str) -> list[Any]:
    """The content of every source file of an importable package, found without importing it: an
    edited plugin (an editable install) is not answered from what its old code said."""
    try:
        found = importlib.util.find_spec(top_level)
    except (ImportError, ValueError) as exc:  # ValueError: a module without a spec, such as __main__
        raise Unstampable(f"{top_level}: {exc}") from exc
    if found is None or (found.submodule_search_locations is None and not found.origin):
        raise Unstampable(f"{top_level}: no source found")
    if found.submodule_search_locations is None:
        return [top_level, file_stamp(Path(str(found.origin)))]
    files = [p for root in found.submodule_search_locations for p in _files(Path(root), "**/*.py")]
    return [top_level, [file_stamp(p) for p in files]]


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def code_key() -> dict[str, Any]:
    """The installed plugins, the source of every package they register code from (the core's
    included), and the versions of the libraries behind a spec."""
    registry = default_registry()
    packages = sorted({"vlm_adapters"} | {m.split(".")[0] for m in registry.code_modules()})
    return {
        "plugins": sorted([p.name, p.distribution, p.version, p.status] for p in registry.plugins()),
        "code": [code_stamp(p) for p in packages],
        "versions": {d: _version(d) for d in VERSIONED},
    }


def _well_formed(stored: object) -> bool:
    if not isinstance(stored, dict) or not isinstance(stored.get("geometries"), dict):
        return False
    data = stored.get("data")
    return (
        isinstance(data, dict)
        and isinstance(data.get("adapter"), str)
        and isinstance(data.get("config"), dict)
        and isinstance(data.get("spec"), dict)
    )


@dataclass(frozen=True)
class InspectEntry:
    """One remembered answer: a file named by the hash of its key."""

    path: Path
    key: dict[str, Any]

    @classmethod
    def for_command(cls, backbone: str | None, model: str | None) -> InspectEntry | None:
        """The entry for ``inspect [backbone] [--model model]``, or ``None`` if it cannot be remembered.

        The key is taken before the answer is computed, so a file edited meanwhile makes the
        next call miss rather than pairing new code with an old answer."""
        try:
            checkpoint = checkpoint_stamp(model)
            if checkpoint is None:
                return None
            key = {
                "format": FORMAT,
                "backbone": backbone,
                "model": str(Path(model).expanduser().resolve()) if model is not None else None,
                "checkpoint": checkpoint,
                **code_key(),
            }
        except Unstampable:
            return None
        key = json.loads(json.dumps(key))
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
        return cls(cache_root() / "inspect" / f"{digest}.json", key)

    def load(self) -> dict[str, Any] | None:
        """The stored answer (``data`` and ``geometries``), if it exists, is whole and has this key."""
        try:
            stored = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        if not _well_formed(stored) or stored.get("key") != self.key:
            return None
        return dict(stored)

    def save(self, data: dict[str, Any], geometries: dict[str, Any]) -> None:
        """Write atomically; a cache that cannot be written only costs the next call its speed."""
        tmp: Path | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-", suffix=".json")
            tmp = Path(name)
            with os.fdopen(fd, "w") as f:
                json.dump({"key": self.key, "data": data, "geometries": geometries}, f)
            os.replace(tmp, self.path)
        except OSError:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
