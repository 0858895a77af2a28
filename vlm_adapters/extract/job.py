"""``extract``: a whole manifest through the frozen model into shards, streamed, resumable, data-parallel.

Per rank: rows are read one at a time; rows of one image that come together form a group whose
image prefix runs once (:mod:`.prefix`); lone rows run in batches; each sample's phrase maps,
phrase hidden states and token ids go to the shard writer, which holds at most one shard in
memory. A refused row is recorded with its typed error and the run goes on.
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from .. import __version__
from ..adapter import concat_batches
from ..errors import VisionInputError, VlmAdaptersError
from ..geometry import ImageGeometry, Size
from ..pipeline import FrozenLMM, FrozenOutput, Reduce
from .atomic import atomic_write_text
from .distributed import Ranks, current_ranks
from .errors import OutputFolderError
from .manifest import Row, as_manifest
from .prefix import image_inputs_equal, run_shared_prefix
from .prepare import Prepared, RowPreparer, error_record
from .shards import INDEX, INDEX_DIR, RUN, SHARD_DIR, ShardWriter, done_positions, merge_index

DEFAULT_PROMPT = "describe the image ."
FORMAT = "vlm-adapters-extract/1"
STORE_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
MAX_GROUP = 64
"""Rows of one image that share one prefix forward at most (longer runs start a new group)."""


@dataclass
class ExtractSummary:
    """What a finished rank did."""

    out: Path
    ok: int = 0
    errors: int = 0
    skipped: int = 0
    merged: bool = False
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)


def output_settings(
    lmm_or_backbone: FrozenLMM | str,
    *,
    model: str | None,
    source: str,
    layers: Sequence[int] | None,
    heads: Sequence[int] | None,
    dtype: str,
    model_dtype: str,
    reduce: str,
    prompt: str,
) -> dict[str, Any]:
    """The arguments that decide what an output folder holds: a resumed run must repeat them."""
    backbone = lmm_or_backbone.adapter.name if isinstance(lmm_or_backbone, FrozenLMM) else lmm_or_backbone
    return {
        "backbone": backbone,
        "model": model or "tiny (random weights)",
        "source": source,
        "layers": list(layers) if layers is not None else None,
        "heads": list(heads) if heads is not None else None,
        "dtype": dtype,
        "model_dtype": model_dtype,
        "reduce": reduce,
        "prompt": prompt,
    }


def check_output(out: Path, settings: dict[str, Any], *, resume: bool, rank: int = 0) -> None:
    """Refuse an output folder this run must not write into; writes nothing.

    Rank 0 refuses a used folder without ``resume``; every rank refuses another run's folder.
    """
    if out.exists() and not out.is_dir():
        raise OutputFolderError("--out is a file", found=str(out), expected="a folder", fix="pick another --out")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    run_file = out / RUN
    if not run_file.is_file():
        if rank == 0 and set(entries) - {INDEX_DIR, SHARD_DIR}:  # other ranks of this launch may be first
            raise OutputFolderError(
                "--out is not empty and holds no extraction",
                found=f"{out} with {len(entries)} entries ({', '.join(entries[:3])})",
                expected="a new or empty folder, or an extraction folder with run.json",
                fix="pick another --out",
            )
        return
    previous = json.loads(run_file.read_text(encoding="utf-8"))
    old = previous.get("settings", {})
    keys = sorted(set(old) | set(settings))
    changed = [f"{k}: {old.get(k)!r} -> {settings.get(k)!r}" for k in keys if old.get(k) != settings.get(k)]
    if changed:
        raise OutputFolderError(
            "--out holds an extraction with other settings",
            found="; ".join(changed),
            expected="the settings of the run in that folder",
            fix="repeat that run's arguments to resume it, or pick another --out",
        )
    if rank == 0 and not resume:
        raise OutputFolderError(
            "--out already holds an extraction",
            found=f"{out}/run.json ({previous.get('status', '?')})",
            expected="a new or empty folder",
            fix="add --resume to finish or extend that run, or pick another --out",
        )


def extract(
    source: Any,
    out: str | Path,
    lmm: FrozenLMM,
    *,
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    dtype: str = "float16",
    reduce: Reduce = "mean",
    prompt: str = DEFAULT_PROMPT,
    batch_size: int = 8,
    shard_bytes: int = 512 * 2**20,
    limit: int | None = None,
    resume: bool = False,
    share_prefixes: bool = True,
    model: str | None = None,
    ranks: Ranks | None = None,
    progress: bool = True,
    arguments: dict[str, Any] | None = None,
) -> ExtractSummary:
    """Extract every sample of ``source`` (a manifest path, or an iterable of sample dicts) into ``out``.

    Stored per sample (see ``docs/extract.md``): ``maps.<image>.<view>`` ``[K, layers*heads, rows,
    cols]`` (phrase maps, ``reduce`` over each phrase's tokens), ``fused.<image>`` for multi-view
    images, ``hidden`` ``[layers + 1, tokens, dim]`` at the phrase tokens with their
    ``object_ids`` and ``token_ids``; maps and hidden states in ``dtype``. ``resume`` keeps every
    sample already recorded. Under ``torchrun`` or ``accelerate launch`` each process takes its
    share (``ranks``, default from the launcher).
    """
    start = time.perf_counter()
    out = Path(out)
    ranks = ranks or current_ranks()
    manifest = as_manifest(source)
    store_dtype = _store_dtype(dtype)
    if reduce not in ("mean", "max"):
        raise VisionInputError(
            "unknown reduce mode", found=repr(reduce), expected="'mean' or 'max'", fix="pass reduce='mean' or 'max'"
        )
    layers = lmm.check_layers(layers)
    heads = check_heads(heads, int(lmm.model.config.get_text_config().num_attention_heads))
    _check_positive("batch_size", batch_size)
    _check_positive("shard_bytes", shard_bytes)
    if limit is not None:
        _check_positive("limit", limit, allow_zero=True)
    settings = output_settings(
        lmm,
        model=model,
        source=manifest.description,
        layers=layers,
        heads=heads,
        dtype=dtype,
        model_dtype=str(lmm.dtype).removeprefix("torch."),
        reduce=reduce,
        prompt=prompt,
    )
    check_output(out, settings, resume=resume, rank=ranks.rank)
    out.mkdir(parents=True, exist_ok=True)
    if ranks.rank == 0:
        _write_run_json(out, lmm, settings, arguments, ranks, status="running")
    done = done_positions(out) if resume else set()
    writer = ShardWriter(out, ranks.rank, shard_bytes)
    ranks.clear_mark(out)
    job = _Job(lmm, writer, layers, heads, store_dtype, reduce, batch_size, share_prefixes)
    summary = ExtractSummary(out)
    preparer = RowPreparer(lmm.adapter, prompt, manifest.base_dir)
    total = _expected_rows(manifest, limit, len(done), ranks)
    bar = tqdm(total=total, unit="sample", desc=f"extract r{ranks.rank}", disable=not progress or ranks.rank != 0)
    share, last_key = -1, None
    for row in manifest:
        if limit is not None and row.position >= limit:
            break
        if row.share_key != last_key:
            share, last_key = share + 1, row.share_key
        if not ranks.owns(share):
            continue
        if row.position in done:
            summary.skipped += 1
            continue
        try:
            prepared = preparer(row)
        except VlmAdaptersError as exc:
            job.refuse(row, exc)
        else:
            job.add(prepared)
        bar.update(job.take_finished())
    job.finish()
    bar.update(job.take_finished())
    bar.close()
    writer.flush()
    summary.ok, summary.errors, summary.timings = job.ok, job.errors, job.timings
    if ranks.mark_done(out):
        merge_index(out)
        counts = _count(out)
        _write_run_json(out, lmm, settings, arguments, ranks, status="complete", counts=counts)
        summary.merged = True
    summary.seconds = time.perf_counter() - start
    return summary


class _Job:
    """Groups prepared samples by image, runs them, and hands their tensors to the writer."""

    def __init__(
        self,
        lmm: FrozenLMM,
        writer: ShardWriter,
        layers: list[int] | None,
        heads: list[int] | None,
        dtype: torch.dtype,
        reduce: Reduce,
        batch_size: int,
        share_prefixes: bool,
    ) -> None:
        self.lmm = lmm
        self.writer = writer
        self.layers = layers
        self.heads = heads
        self.dtype = dtype
        self.reduce = reduce
        self.batch_size = batch_size
        self.share_prefixes = share_prefixes
        self.group: list[Prepared] = []
        self.singles: list[Prepared] = []
        self.ok = self.errors = self.finished = 0
        self.timings: dict[str, float] = {"forward_s": 0.0, "store_s": 0.0}

    def take_finished(self) -> int:
        n, self.finished = self.finished, 0
        return n

    def refuse(self, row: Row, exc: VlmAdaptersError) -> None:
        self._run_pending()  # keep the index in manifest order
        record = {"position": row.position, "id": row.sample_id, "status": "error", "rank": self.writer.rank}
        record["error"] = error_record(exc)
        self.writer.add_error(record)
        self.errors += 1
        self.finished += 1

    def add(self, sample: Prepared) -> None:
        keys = self.lmm.adapter.sequence_keys
        if self.group and (
            not self.share_prefixes
            or len(self.group) >= MAX_GROUP
            or sample.row.share_key != self.group[0].row.share_key
            or not image_inputs_equal(self.group[0].batch, sample.batch, keys)
        ):
            self._close_group()
        self.group.append(sample)

    def finish(self) -> None:
        self._close_group()
        self._run_singles()

    def _run_pending(self) -> None:
        self._close_group()
        self._run_singles()

    def _close_group(self) -> None:
        group, self.group = self.group, []
        if len(group) == 1:
            self.singles.append(group[0])
            if len(self.singles) >= self.batch_size:
                self._run_singles()
        elif group:
            self._run_singles()
            start = time.perf_counter()
            outs = run_shared_prefix(
                self.lmm,
                [p.batch for p in group],
                layers=self.layers,
                queries=[p.queries for p in group],
                batch_size=self.batch_size,
            )
            self.timings["forward_s"] += time.perf_counter() - start
            for p, o in zip(group, outs, strict=True):
                self._store(p, o)

    def _run_singles(self) -> None:
        singles, self.singles = self.singles, []
        if not singles:
            return
        adapter = self.lmm.adapter
        batch = concat_batches(
            [p.batch for p in singles], adapter.pad_token_id, adapter.padding_side, adapter.sequence_keys
        )
        assert batch.mask_ids is not None
        queries = [(batch.mask_ids[b] >= 0).nonzero().flatten() for b in range(batch.batch_size)]
        start = time.perf_counter()
        outs = self.lmm(batch, layers=self.layers, queries=queries)
        self.timings["forward_s"] += time.perf_counter() - start
        for p, o in zip(singles, outs, strict=True):
            self._store(p, o)

    def _store(self, prepared: Prepared, out: FrozenOutput) -> None:
        start = time.perf_counter()
        try:
            tensors = sample_tensors(out, self.heads, self.dtype, self.reduce)
        except VisionInputError as exc:
            record = {"position": prepared.row.position, "id": prepared.row.sample_id, "status": "error"}
            self.writer.add_error({**record, "rank": self.writer.rank, "error": error_record(exc)})
            self.errors += 1
        else:
            record = {
                "position": prepared.row.position,
                **prepared.record,
                "status": "ok",
                "rank": self.writer.rank,
                "objects": int(out.mask_ids.max()) + 1 if out.mask_ids is not None else 0,
                "geometries": [g.model_dump(mode="json") for g in out.geometries],
            }
            self.writer.add(record, tensors)
            self.ok += 1
        self.finished += 1
        self.timings["store_s"] += time.perf_counter() - start


def sample_tensors(
    out: FrozenOutput, heads: Sequence[int] | None, dtype: torch.dtype, reduce: Reduce = "mean"
) -> dict[str, torch.Tensor]:
    """What an extraction stores for one sample (names as in the shards, see :func:`extract`)."""
    ids = out.mask_ids
    if ids is None or ids.numel() == 0 or int(ids.max()) < 0:
        raise VisionInputError(
            "no query token belongs to a phrase",
            found="mask_ids=None" if ids is None else "every object id is -1",
            expected="object ids 0..K-1 on the phrase tokens",
            fix="give the sample phrases (or mask_ids) on tokens after the image",
        )
    tensors: dict[str, torch.Tensor] = {}
    for i, geometry in enumerate(out.geometries):
        per_view = [_heads(m, len(out.layers), heads) for m in out.phrase_maps_per_view(reduce=reduce, image=i)]
        for v, maps in enumerate(per_view):
            tensors[f"maps.{i}.{v}"] = maps.to(dtype)
        if geometry.num_views > 1:
            tensors[f"fused.{i}"] = out.to_image(per_view, image=i, size=fused_size(geometry)).to(dtype)
    phrase = ids >= 0
    if out.hidden_states is not None:
        tensors["hidden"] = out.hidden_states[:, phrase].to(dtype)
    tensors["object_ids"] = ids[phrase].to(torch.int32)
    tensors["token_ids"] = out.query_token_ids[phrase].to(torch.int64)
    return tensors


def fused_size(geometry: ImageGeometry) -> Size:
    """The grid a multi-view image's fused maps are stored on: the original aspect ratio, as many
    cells as its largest view."""
    cells = max(v.token_grid[0] * v.token_grid[1] for v in geometry.views)
    h, w = geometry.original_size
    return max(1, round(math.sqrt(cells * h / w))), max(1, round(math.sqrt(cells * w / h)))


def _heads(maps: torch.Tensor, num_layers: int, heads: Sequence[int] | None) -> torch.Tensor:
    """``[K, layers*heads, r, c]`` keeping only ``heads`` of every layer."""
    if heads is None:
        return maps
    k, lh = maps.shape[:2]
    per_layer = maps.reshape(k, num_layers, lh // num_layers, *maps.shape[2:])
    return per_layer[:, :, list(heads)].flatten(1, 2)


def _store_dtype(name: str) -> torch.dtype:
    if name not in STORE_DTYPES:
        raise VisionInputError(
            "unknown dtype for the stored maps",
            found=repr(name),
            expected=f"one of {list(STORE_DTYPES)}",
            fix="pass dtype='float16' (half the size of float32, enough for probabilities)",
        )
    return STORE_DTYPES[name]


def check_heads(heads: Sequence[int] | None, count: int) -> list[int] | None:
    """Heads asked for: distinct ints (negative allowed) of the ``count`` heads per layer; as 0..count-1."""
    if heads is None:
        return None
    values = list(heads)
    if (
        not values
        or any(not isinstance(h, int) or isinstance(h, bool) or not -count <= h < count for h in values)
        or len({h % count for h in values}) != len(values)
    ):
        raise VisionInputError(
            "heads do not fit the model",
            found=repr(heads)[:80],
            expected=f"distinct ints in {-count}..{count - 1} ({count} heads per layer)",
            fix="pick heads that exist, or leave heads out for all of them",
        )
    return [h % count for h in values]


def _check_positive(name: str, value: Any, allow_zero: bool = False) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < (0 if allow_zero else 1):
        raise VisionInputError(
            f"{name} is not a {'non-negative' if allow_zero else 'positive'} integer",
            found=repr(value),
            expected="an int" + (" >= 0" if allow_zero else " >= 1"),
            fix=f"pass a whole number for {name}",
        )


def _expected_rows(manifest: Any, limit: int | None, done: int, ranks: Ranks) -> int | None:
    """Rows this rank will run, for the progress bar (exact for one rank, about right for several)."""
    if not manifest.sized:
        return None
    rows = len(manifest) if limit is None else min(limit, len(manifest))
    return max(0, math.ceil((rows - done) / ranks.world_size))


def _count(out: Path) -> dict[str, int]:
    counts = {"ok": 0, "error": 0}
    with open(out / INDEX, encoding="utf-8") as f:
        for line in f:
            status = json.loads(line)["status"]
            counts[status] = counts.get(status, 0) + 1
    return counts


def _versions() -> dict[str, str]:
    import safetensors
    import transformers

    return {
        "vlm_adapters": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "safetensors": safetensors.__version__,
        "python": platform.python_version(),
    }


def _write_run_json(
    out: Path,
    lmm: FrozenLMM,
    settings: dict[str, Any],
    arguments: dict[str, Any] | None,
    ranks: Ranks,
    *,
    status: str,
    counts: dict[str, int] | None = None,
) -> None:
    text_config = lmm.model.config.get_text_config()
    data = {
        "format": FORMAT,
        "status": status,
        "backbone": lmm.adapter.name,
        "model": settings["model"],
        "spec": lmm.adapter.spec.model_dump(mode="json"),
        "num_layers": int(text_config.num_hidden_layers),
        "num_heads": int(text_config.num_attention_heads),
        "settings": settings,
        "arguments": arguments or {},
        "processes": {"world_size": ranks.world_size, "launcher": ranks.launcher},
        "versions": _versions(),
        "counts": counts,
    }
    atomic_write_text(out / RUN, json.dumps(data, indent=2) + "\n")
