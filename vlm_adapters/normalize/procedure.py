"""The one ``normalize`` procedure: read and check a dataset dict with one policy, let the backbone
resolve its images, cross-check the sources, fit the prompt, and build the batch.

Every backbone goes through these steps in this order; only ``resolve_images`` (pixels and
geometry) and the token expansion belong to the backbone (see :mod:`.hooks`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from ..batch import VisionBatch
from ..errors import MissingInputError, VisionInputError
from ..geometry import ImageGeometry
from .crosscheck import check_matches_raw, check_padding_visible
from .ids import TokenFields, read_tokens
from .pixels import read_pixels
from .sample import SampleImages
from .sizes import check_count, check_meta, sample_sizes
from .tokens import fit_tokens

if TYPE_CHECKING:
    from ..adapter import BackboneAdapter


def require_mapping(sample: Any) -> Mapping[str, Any]:
    """A sample is one dict; a list (a batch) or a tensor is refused with the fix."""
    if not isinstance(sample, Mapping):
        raise VisionInputError(
            "a sample must be a dict",
            found=type(sample).__name__,
            expected="a mapping with input_ids and pixel_values (or raw images)",
            fix="pass one dataset item; use adapter.collate(samples) for a list",
        )
    return sample


def _no_ids(found: Mapping[str, Any]) -> MissingInputError:
    return MissingInputError(
        "the sample has images but no input_ids",
        found=f"keys {sorted(map(str, found))[:12]}",
        expected="input_ids with one image placeholder (or the processor's expanded run) per image",
        fix="tokenize adapter.format_prompt(text, num_images) with the processor's tokenizer, or build the batch "
        "with adapter.prepare(images, texts)",
    )


def normalize_sample(adapter: BackboneAdapter, sample: Mapping[str, Any]) -> VisionBatch:
    """See :meth:`BackboneAdapter.normalize`."""
    sample = require_mapping(sample)
    tokens = read_tokens(sample, adapter.vocab_size)
    form = adapter.pixel_form
    raw, processed = read_pixels(sample, form)
    if raw is None and not processed:
        return _text_only(adapter, tokens)
    if tokens is None:
        raise _no_ids(sample)
    raw_sizes = [(im.height, im.width) for im in raw] if raw else None
    for size in raw_sizes or []:
        adapter.spec.geometry(size)  # the spec's typed refusal (e.g. an aspect ratio the backbone cannot take)
    from_raw = adapter.process_images(raw) if raw else None
    sizes, known = sample_sizes(sample, raw_sizes, adapter.spec)
    resolved = adapter.resolve_images(SampleImages(sample, tokens.primary, processed, raw, from_raw, sizes))
    geometries = resolved.geometries
    check_count(sizes, len(geometries))
    given = {key: resolved.pixels[key] for key in processed if key in resolved.pixels}
    if from_raw is not None:
        check_matches_raw(given, from_raw, geometries, adapter.pixel_cells)
    else:
        for key, pixels in given.items():
            check_padding_visible(pixels, geometries, form.views[key], key)
    check_meta(sample, geometries)
    notes = list(resolved.notes)
    counts = [g.num_image_tokens for g in geometries]
    ids, companions, expanded = fit_tokens(
        tokens,
        counts,
        lambda ids, comp, counts, name: adapter.expand_image_tokens(ids, comp, counts, name, geometries=geometries),
    )
    if expanded:
        note = f"input_ids had one placeholder per image; expanded to {counts} tokens"
        notes.append(note)
        adapter.note_repair("expanded_ids", note)
    if sizes is None:
        known = [False] * len(geometries)
    return _finish(adapter, ids, companions, resolved.pixels, geometries, known, notes)


def _text_only(adapter: BackboneAdapter, tokens: TokenFields | None) -> VisionBatch:
    if tokens is None:
        raise MissingInputError(
            "the sample has neither input_ids nor images",
            found="no input_ids, input_ids_with_vision, pixel values or images",
            expected="at least input_ids",
            fix="pass the tokenized prompt and its images",
        )
    token = adapter.spec.image_token_id
    found = int((tokens.primary == token).sum())
    if found:
        raise MissingInputError(
            "input_ids carry image tokens but the sample has no pixel values or images",
            found=f"{found} tokens of id {token}",
            expected="pixel_values (or a raw image under 'image') for them",
            fix="keep pixel_values in your collate (or the raw image in the sample)",
        )
    ids, companions, _ = fit_tokens(tokens, [], adapter.expand_image_tokens)
    return _finish(adapter, ids, companions, {}, [], [], [])


def _finish(
    adapter: BackboneAdapter,
    ids: torch.Tensor,
    companions: Mapping[str, torch.Tensor],
    pixels: Mapping[str, torch.Tensor],
    geometries: Sequence[ImageGeometry],
    known: Sequence[bool],
    notes: list[str],
) -> VisionBatch:
    inputs: dict[str, torch.Tensor] = {
        "input_ids": ids[None],
        "attention_mask": companions.get("attention_mask", torch.ones_like(ids))[None].long(),
    }
    if "labels" in companions:
        inputs["labels"] = companions["labels"][None]
    inputs.update(pixels)
    mask_ids = companions.get("mask_ids")
    batch = adapter.finish_batch(
        inputs,
        [[g.original_size for g in geometries]],
        mask_ids=None if mask_ids is None else mask_ids[None],
        geometries=[list(geometries)],
    )
    batch.extras.update({"repairs": notes, "original_size_known": [list(known)]})
    return batch
