"""Shared image prefixes: what samples of one image have in common runs once, their texts run over its cache.

Samples of one image ask different texts about the same picture (RefCOCO has about 7 referring
expressions per image). In a causal LM no token depends on the tokens after it, so the tokens all
those samples share (system prompt, image, question) have the same keys and values in each of
them. :func:`run_shared_prefix` runs that prefix once, vision tower included, into a KV cache, then
all the texts as one batched continuation over it, under the same attention capture as
:class:`~vlm_adapters.pipeline.FrozenLMM`: query rows are the continuation's tokens, key columns
the image tokens in the cache, and each row's softmax runs over the cache and the new tokens, so the
captured rows are those of the full forward.

Positions come from the model's own machinery. The continuation is right-padded and passed
without an attention mask: every text starts right after the prefix, and (causal attention) no
real token sees a pad. The model numbers new tokens from the cache length; mrope models (the
native-grid families) add the ``rope_deltas`` that the prefix forward stored on the model, exactly as
they do in generation. A full-length attention mask would make those models build positions for
the whole sequence instead of the new tokens (a shape error in transformers 5.24), which is why
none is passed.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import Any

import torch
from transformers import DynamicCache

from ..batch import VisionBatch
from ..capture import CaptureRequest, _accepts, capture_attention
from ..errors import VisionInputError
from ..pipeline import LOSS_ONLY_KEYS, FrozenLMM, FrozenOutput, pad_positions

__all__ = ["image_inputs_equal", "run_shared_prefix", "shared_prefix_length"]


def image_inputs_equal(a: VisionBatch, b: VisionBatch, sequence_keys: frozenset[str]) -> bool:
    """Whether two one-sample batches give the model the same images (every non-sequence input equal)."""
    keys_a = {k for k in a.inputs if k not in sequence_keys}
    keys_b = {k for k in b.inputs if k not in sequence_keys}
    if keys_a != keys_b or a.geometries != b.geometries:
        return False
    return all(a.inputs[k].shape == b.inputs[k].shape and torch.equal(a.inputs[k], b.inputs[k]) for k in keys_a)


def shared_prefix_length(samples: Sequence[VisionBatch], queries: Sequence[torch.Tensor]) -> int:
    """Tokens at the start of every sample that are the same everywhere, hold every image token and
    no query, and leave each sample at least one token of its own; 0 when there is no such prefix."""
    ids = [s.input_ids[0].cpu() for s in samples]
    shortest = min(i.numel() for i in ids)
    stacked = torch.stack([i[:shortest] for i in ids])
    differs = (stacked != stacked[0]).any(0).nonzero()
    length = int(differs[0]) if differs.numel() else shortest
    length = min(length, shortest - 1, *(int(q.min()) for q in queries if q.numel()))
    image_end = max((int(p.max()) + 1 for s in samples for p in s.image_token_positions[0] if p.numel()), default=0)
    if "attention_mask" in samples[0].inputs and any(not s.inputs["attention_mask"].bool().all() for s in samples):
        return 0  # padded samples: positions would not line up
    return length if length >= image_end > 0 else 0


def run_shared_prefix(
    lmm: FrozenLMM,
    samples: Sequence[VisionBatch],
    *,
    layers: Sequence[int] | None = None,
    queries: Sequence[torch.Tensor] | None = None,
    hidden_states: bool = True,
    batch_size: int | None = None,
) -> list[FrozenOutput]:
    """:class:`FrozenOutput` per sample, as ``lmm(sample)`` gives it, with the shared prefix run once.

    ``samples`` are one-sample batches of the same image inputs (pixels, grids, sizes); their
    texts may differ. ``queries[i]`` are positions in sample ``i`` (default: every text token
    after the image). The texts run ``batch_size`` at a time (default: all at once). Samples with
    no usable shared prefix (one sample, or queries inside the common part) run one by one.
    """
    if not samples:
        return []
    keys = lmm.adapter.sequence_keys
    for i, sample in enumerate(samples):
        if not isinstance(sample, VisionBatch) or sample.batch_size != 1:
            raise VisionInputError(
                f"samples[{i}] is not a one-sample batch",
                found=type(sample).__name__ if not isinstance(sample, VisionBatch) else f"{sample.batch_size} samples",
                expected="a VisionBatch of one sample (adapter.prepare / normalize of one sample)",
                fix="pass one batch per sample",
            )
        if not image_inputs_equal(samples[0], sample, keys):
            raise VisionInputError(
                f"samples[{i}] does not show the same images as samples[0]",
                found="different pixel values, grids or image sizes",
                expected="samples of one image (and one image preprocessing)",
                fix="group samples by image before running them together",
            )
    layers = lmm.check_layers(layers)
    q_given = [None] * len(samples) if queries is None else list(queries)
    if len(q_given) != len(samples):
        raise VisionInputError(
            "queries do not give one set of positions per sample",
            found=f"{len(q_given)} query sets",
            expected=f"{len(samples)} (one per sample)",
            fix="pass queries=[positions_of_sample_0, ...], or leave it out",
        )
    q_list = [lmm.resolve_queries(s, None if q is None else [q])[0] for s, q in zip(samples, q_given, strict=True)]
    shareable = len(samples) > 1 and not lmm.adapter.image_sees_later_text
    prefix = shared_prefix_length(samples, q_list) if shareable else 0
    if prefix == 0:
        return [
            lmm(s, layers=layers, queries=[q], hidden_states=hidden_states)[0]
            for s, q in zip(samples, q_list, strict=True)
        ]

    model = lmm.model
    cache_arg = "cache" if _accepts(model, "cache") else "past_key_values"
    start = time.perf_counter()
    first = samples[0].to(lmm.device, lmm.dtype)
    prefix_inputs = {k: (v[:, :prefix] if k in keys else v) for k, v in first.inputs.items() if k not in LOSS_ONLY_KEYS}
    # A cache of full layers, even for sliding-window layers: every key stays, so key positions are
    # sequence positions, and the sliding window comes from the mask as in a forward without a cache.
    cache = DynamicCache()
    extra = {"logits_to_keep": 1} if _accepts(model, "logits_to_keep") else {}
    with torch.no_grad():
        model(**prefix_inputs, **{cache_arg: cache}, use_cache=True, **extra)
    _sync(lmm.device)
    prefix_s = time.perf_counter() - start

    image_keys = pad_positions([torch.cat(samples[0].image_token_positions[0])])
    text_keys = [k for k in first.inputs if k in keys and k != "attention_mask" and k not in LOSS_ONLY_KEYS]
    pad_values = {"input_ids": lmm.adapter.pad_token_id}
    step = batch_size or len(samples)
    outputs: list[FrozenOutput] = []
    for begin in range(0, len(samples), step):
        part = range(begin, min(begin + step, len(samples)))
        start = time.perf_counter()
        part_cache = cache if part.stop == len(samples) else copy.deepcopy(cache)
        part_cache.batch_repeat_interleave(len(part))
        inputs = {
            key: pad_positions([samples[i].inputs[key][0, prefix:] for i in part], pad_values.get(key, 0)).to(
                lmm.device
            )
            for key in text_keys
        }
        request = CaptureRequest(
            query_positions=pad_positions([q_list[i] - prefix for i in part]),
            key_positions=image_keys,
            layers=layers,
            hidden_states=hidden_states,
        )
        forward: dict[str, Any] = {cache_arg: part_cache, "use_cache": True}
        _, cap = capture_attention(model, inputs, request, **forward)
        _sync(lmm.device)
        timings = {"prefix_s": prefix_s, "continuation_s": time.perf_counter() - start, "prefix_tokens": prefix}
        attention, hidden = cap.attention, cap.hidden_states
        for j, i in enumerate(part):
            outputs.append(
                lmm.sample_output(
                    samples[i],
                    0,
                    q_list[i],
                    attention[j],
                    hidden[j] if hidden is not None else None,
                    cap.layers,
                    timings=timings,
                )
            )
    return outputs


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
