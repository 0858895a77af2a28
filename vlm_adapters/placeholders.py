"""Image placeholders in ``input_ids``: the processor's expanded ids, or one placeholder per image.

Research datasets hand over either form of the same prompt. The placeholder form is expanded
exactly (the placeholder is one special token, so repeating its id is what the processor does),
and every per-token companion (``mask_ids``, ``labels``, ...) is expanded alongside, repeating the
placeholder's own value, so it stays aligned. How many tokens each image takes, and how a
mismatch is explained, belong to the backbone: the caller passes the counts and builds the error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import accumulate

import torch

from .errors import TokenCountError, VisionInputError

COMPANION_KEYS = ("mask_ids", "labels", "attention_mask")
"""Per-token sample fields: one value per token of ``input_ids``."""


def image_runs(ids: torch.Tensor, token_id: int) -> list[tuple[int, int]]:
    """``(start, length)`` of each maximal run of ``token_id`` in a 1-D ``ids``."""
    hit = (ids == token_id).to(torch.int8)
    edges = torch.diff(hit, prepend=hit.new_zeros(1), append=hit.new_zeros(1))
    starts = (edges == 1).nonzero().flatten().tolist()
    ends = (edges == -1).nonzero().flatten().tolist()
    return [(s, e - s) for s, e in zip(starts, ends, strict=True)]


def _holds(lengths: list[int], counts: Sequence[int], shared_runs: bool) -> bool:
    """Whether runs of ``lengths`` hold ``counts`` (positive) tokens per image, in order.

    With ``shared_runs`` one run may hold several adjacent images, so each run must end where an
    image ends; without it each image is its own run.
    """
    if not shared_runs:
        return lengths == list(counts)
    image_ends = set(accumulate(counts))
    return sum(lengths) == sum(counts) and all(end in image_ends for end in accumulate(lengths))


def expand_placeholders(
    ids: torch.Tensor,
    companions: Mapping[str, torch.Tensor],
    image_token_id: int,
    counts: Sequence[int],
    *,
    mismatch: Callable[[list[int]], VisionInputError],
    shared_runs: bool = False,
) -> tuple[torch.Tensor, dict[str, torch.Tensor], bool]:
    """``(ids, companions, expanded)`` with ``counts[i]`` image tokens for image ``i`` in a 1-D ``ids``.

    Expanded ids are kept; one placeholder per image is expanded (``expanded`` is then true); any
    other layout raises ``mismatch(run lengths)``. ``shared_runs`` lets adjacent images form one
    run, for prompt formats that put nothing between them. A companion of the final length is
    kept, one of ``ids``'s length is expanded alongside, and any other is a ``TokenCountError``.
    """
    lengths = [n for _, n in image_runs(ids, image_token_id)]
    repeats: torch.Tensor | None = None
    if not _holds(lengths, counts, shared_runs):
        if not _holds(lengths, [1] * len(counts), shared_runs):
            raise mismatch(lengths)
        repeats = torch.ones_like(ids, dtype=torch.long)
        repeats[ids == image_token_id] = torch.as_tensor(list(counts), dtype=torch.long, device=ids.device)
    final_len = ids.numel() if repeats is None else int(repeats.sum())
    out: dict[str, torch.Tensor] = {}
    for key, seq in companions.items():
        if seq.numel() == final_len:
            out[key] = seq
        elif repeats is not None and seq.numel() == ids.numel():
            out[key] = seq.repeat_interleave(repeats)
        else:
            lengths_ok = f"{ids.numel()}" + ("" if repeats is None else f" (or {final_len} expanded)")
            raise TokenCountError(
                f"{key} is not aligned with input_ids",
                found=f"{seq.numel()} entries",
                expected=f"one per token: {lengths_ok}",
                fix=f"build {key} from the same tokenization as input_ids",
            )
    return (ids if repeats is None else ids.repeat_interleave(repeats)), out, repeats is not None


def splice_placeholders(
    ids: torch.Tensor,
    companions: Mapping[str, torch.Tensor],
    positions: Sequence[int],
    replacements: Sequence[torch.Tensor],
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Replace the token at each of ``positions`` (one placeholder per image, in order) by the ids of
    ``replacements`` (the processor's text for that image, tokenized), for prompt formats that write
    more than image tokens per image (wrappers, markers). Companions of ``ids``'s length repeat the
    placeholder's value over its replacement; companions of the final length are kept."""
    lengths = torch.ones_like(ids, dtype=torch.long)
    pieces: list[torch.Tensor] = []
    start = 0
    for at, new in zip(positions, replacements, strict=True):
        pieces += [ids[start:at], new.to(ids.dtype)]
        lengths[at] = new.numel()
        start = at + 1
    pieces.append(ids[start:])
    out_ids = torch.cat(pieces)
    out: dict[str, torch.Tensor] = {}
    for key, seq in companions.items():
        if seq.numel() == out_ids.numel():
            out[key] = seq
        elif seq.numel() == ids.numel():
            out[key] = seq.repeat_interleave(lengths)
        else:
            raise TokenCountError(
                f"{key} is not aligned with input_ids",
                found=f"{seq.numel()} entries",
                expected=f"one per token: {ids.numel()} (or {out_ids.numel()} expanded)",
                fix=f"build {key} from the same tokenization as input_ids",
            )
    return out_ids, out
