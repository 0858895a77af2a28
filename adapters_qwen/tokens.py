"""``input_ids`` and the per-token fields that ride along (``mask_ids``, ``labels``, ``attention_mask``).

The stock processor expands each image placeholder into ``t*h*w / m^2`` copies before
tokenizing. Datasets hand over either that expanded sequence or the prompt with one placeholder
per image; the latter is expanded here exactly as the processor would (a placeholder is one
special token, so repeating its id is the same as repeating its text), and every per-token field
is expanded alongside, repeating the placeholder's own value.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from vlm_adapters import DynamicSpec, MissingInputError, TokenCountError, VisionInputError
from vlm_adapters.placeholders import COMPANION_KEYS, expand_placeholders, image_runs

logger = logging.getLogger("adapters_qwen")


@dataclass
class TokenSequence:
    ids: torch.Tensor | None
    """``input_ids`` as given (expanded or not)."""
    ids_with_vision: torch.Tensor | None
    """``input_ids_with_vision``: the processor's expanded ids, where the dataset kept them."""
    aligned: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def primary(self) -> torch.Tensor:
        ids = self.ids_with_vision if self.ids_with_vision is not None else self.ids
        assert ids is not None
        return ids


def _one_sample(value: Any, name: str) -> torch.Tensor:
    t = value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
    if t.ndim == 2 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 1:
        raise VisionInputError(
            f"{name} is not one sample's sequence",
            found=f"shape {list(t.shape)}",
            expected="[seq] or [1, seq]",
            fix="normalize one sample at a time (adapter.collate batches them)",
        )
    if t.is_floating_point() and not bool((t == t.round()).all()):
        raise VisionInputError(
            f"{name} holds non-integer values", found=str(t.dtype), expected="integer ids", fix="pass token ids"
        )
    return t.long()


def read_sequence(sample: Mapping[str, Any]) -> TokenSequence | None:
    ids = sample.get("input_ids")
    ids_v = sample.get("input_ids_with_vision")
    if ids is None and ids_v is None:
        return None
    return TokenSequence(
        ids=None if ids is None else _one_sample(ids, "input_ids"),
        ids_with_vision=None if ids_v is None else _one_sample(ids_v, "input_ids_with_vision"),
        aligned={k: _one_sample(sample[k], k) for k in COMPANION_KEYS if sample.get(k) is not None},
    )


def check_token_kinds(ids: torch.Tensor, spec: DynamicSpec) -> None:
    """Refuse video tokens (normalize handles still images) and warn on unwrapped image runs."""
    if spec.video_token_id is not None and bool((ids == spec.video_token_id).any()):
        raise VisionInputError(
            "input_ids carry video tokens",
            found=f"{int((ids == spec.video_token_id).sum())} tokens of id {spec.video_token_id}",
            expected="still-image samples only",
            fix="build video inputs with the stock processor (videos=...) and call the model directly",
        )
    start, end = spec.vision_start_token_id, spec.vision_end_token_id
    if start is None or end is None:
        return
    for s, n in image_runs(ids, spec.image_token_id):
        before = int(ids[s - 1]) if s > 0 else None
        after = int(ids[s + n]) if s + n < ids.numel() else None
        if before != start or after != end:
            logger.warning(
                "image tokens at %d..%d are not wrapped in vision_start/vision_end (ids %d/%d) as the "
                "chat template writes them; the model runs but sees an unusual prompt",
                s,
                s + n,
                start,
                end,
            )
            return


def _diagnose(lengths: list[int], counts: list[int], spec: DynamicSpec, name: str) -> TokenCountError:
    m2 = spec.merge_size**2
    fix = "expand each placeholder with the stock processor (or pass input_ids with one placeholder per image)"
    if not lengths:
        return TokenCountError(
            f"{name} has no image tokens",
            found=f"no token of id {spec.image_token_id} ({spec.image_token!r})",
            expected=f"{len(counts)} image(s) of {counts} tokens",
            fix="tokenize the prompt with this checkpoint's tokenizer and its chat template (adapter.format_prompt)",
        )
    if len(lengths) != len(counts):
        return TokenCountError(
            f"{name} has {len(lengths)} runs of image tokens for {len(counts)} image(s)",
            found=f"runs of {lengths} tokens",
            expected=f"{counts}, each run wrapped in vision_start/vision_end",
            fix=fix,
        )
    if all(n == c * m2 for n, c in zip(lengths, counts, strict=True)):
        return TokenCountError(
            f"{name} counts patches, not tokens (off by merge_size**2 = {m2})",
            found=lengths,
            expected=counts,
            fix="one image token per merged window: t*h*w / merge_size**2",
        )
    return TokenCountError(
        f"{name} image-token counts do not match the images' grids",
        found=lengths,
        expected=f"{counts} (t*h*w / {m2} per image), or one placeholder per image",
        fix=fix,
    )


def fit_sequence(
    seq: TokenSequence, counts: Sequence[int], spec: DynamicSpec
) -> tuple[torch.Tensor, dict[str, torch.Tensor], bool]:
    """The expanded ids for ``counts`` image tokens per image, with every per-token field aligned.

    With both ``input_ids_with_vision`` and ``input_ids``, a field of the former's length follows
    it and any other follows ``input_ids``; the two must be one prompt once expanded.
    """
    primary = seq.primary
    secondary = seq.ids if seq.ids_with_vision is not None else None
    mine = {k: v for k, v in seq.aligned.items() if secondary is None or v.numel() == primary.numel()}
    theirs = {k: v for k, v in seq.aligned.items() if k not in mine}
    name = "input_ids_with_vision" if seq.ids_with_vision is not None else "input_ids"
    ids, mine, expanded = _expand(primary, mine, counts, spec, name)
    if secondary is not None:
        other, theirs, _ = _expand(secondary, theirs, counts, spec, "input_ids")
        if not torch.equal(other, ids):
            raise TokenCountError(
                "input_ids and input_ids_with_vision are different prompts",
                found=f"{secondary.numel()} and {primary.numel()} tokens that differ after expansion",
                expected="input_ids_with_vision = input_ids with each placeholder expanded",
                fix="keep both from the same processor call, or pass only one",
            )
        mine.update(theirs)
    return ids, mine, expanded


def _expand(
    ids: torch.Tensor, aligned: Mapping[str, torch.Tensor], counts: Sequence[int], spec: DynamicSpec, name: str
) -> tuple[torch.Tensor, dict[str, torch.Tensor], bool]:
    """One sequence through the core expansion, mismatches explained by :func:`_diagnose`."""
    return expand_placeholders(
        ids, aligned, spec.image_token_id, counts, mismatch=lambda lengths: _diagnose(lengths, list(counts), spec, name)
    )


def require_ids(seq: TokenSequence | None) -> TokenSequence:
    if seq is None:
        raise MissingInputError(
            "the sample has images but no input_ids",
            found="no input_ids / input_ids_with_vision",
            expected="the tokenized prompt with one image placeholder per image (or expanded)",
            fix="tokenize the prompt (adapter.format_prompt), or build the batch with adapter.prepare()",
        )
    return seq
