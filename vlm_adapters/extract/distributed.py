"""Data parallelism on the launchers people already run: ``torchrun`` and ``accelerate launch``.

Each process learns its rank and the number of ranks from its launcher (accelerate's
``PartialState`` under ``accelerate launch``; the ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK``
variables that ``torchrun`` sets, as ``torch.distributed``'s ``env://`` initialisation reads
them), takes a deterministic share of the manifest, and writes its own shards and index file.
The processes never wait for each other: each marks its end with a file, and whichever finishes
last (it sees every mark) merges the index. No collective runs, so ranks with uneven shares never
hit a collective's timeout, and a shared folder is all that several machines need.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .shards import INDEX_DIR


@dataclass(frozen=True)
class Ranks:
    """This process's place among the processes of one extraction."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launcher: str = "single"

    def owns(self, share: int) -> bool:
        """Whether share ``share`` (a run of manifest rows of one image) is this rank's."""
        return share % self.world_size == self.rank

    def device(self) -> torch.device:
        """``cuda:<local rank>`` when there is a GPU, else the CPU."""
        return torch.device(f"cuda:{self.local_rank}") if torch.cuda.is_available() else torch.device("cpu")

    def mark_done(self, folder: Path) -> bool:
        """Record that this rank finished; True when every rank of this run has (then merge)."""
        (folder / INDEX_DIR / f"r{self.rank:03d}.done").write_text(f"{self.world_size}\n")
        return all((folder / INDEX_DIR / f"r{r:03d}.done").exists() for r in range(self.world_size))

    def clear_mark(self, folder: Path) -> None:
        (folder / INDEX_DIR / f"r{self.rank:03d}.done").unlink(missing_ok=True)


def current_ranks() -> Ranks:
    """The launcher's answer: ``accelerate launch``, ``torchrun`` (or any ``env://`` launcher), or one process."""
    env = os.environ
    if "ACCELERATE_MIXED_PRECISION" in env:  # set by every `accelerate launch`
        from accelerate import PartialState

        # cpu=True without a GPU: accelerate then joins the processes with gloo (else it would treat
        # each process as a world of one).
        state = PartialState(cpu=not torch.cuda.is_available())
        return Ranks(state.process_index, state.num_processes, state.local_process_index, "accelerate")
    world = int(env.get("WORLD_SIZE", "1"))
    if world > 1:
        return Ranks(int(env["RANK"]), world, int(env.get("LOCAL_RANK", "0")), "torchrun")
    return Ranks()
