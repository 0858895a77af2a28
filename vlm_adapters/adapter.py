"""``BackboneAdapter``: the only interface a backbone implements.

An adapter answers questions about one backbone family: what its vision input must be (the
spec, read from the checkpoint's config and processor), how to build and validate model
inputs (always through the stock processor), and where image tokens sit in the sequence.
It does not run the model loops; the pipeline owns those.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from functools import cached_property
from itertools import pairwise
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from einops import rearrange
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.processing_utils import ProcessorMixin
from typing_extensions import Self

from .batch import VisionBatch
from .errors import TokenCountError, VisionInputError
from .geometry import ImageGeometry
from .images import RawImage, image_size, is_raw_image
from .normalize import SampleHooks, normalize_sample
from .normalize.pixels import raw_image
from .spec import SpecBase

Spec = SpecBase


class BackboneAdapter(SampleHooks, ABC):
    """Base class for backbone adapters; subclass it in a plugin and register the class.

    Subclasses set ``name`` and ``model_types`` and implement :meth:`build_spec`. Everything else
    has a working default built on the spec; ``normalize`` is one procedure for every backbone,
    whose backbone-specific steps (``resolve_images``, token expansion) are the hooks of
    :class:`~vlm_adapters.normalize.SampleHooks`. Tiny offline fixtures are optional: implement
    :class:`~vlm_adapters.tiny.TinyFactory` (``tiny_config``, ``tiny_processor``) for ``from_tiny``.
    """

    name: ClassVar[str]
    """Registry name, usually the ``model_type`` it serves."""
    model_types: ClassVar[tuple[str, ...]]
    """transformers ``config.model_type`` values this adapter serves."""
    spec_kind: ClassVar[str]
    """Which registered kind of :class:`VisionInputSpec` this adapter's ``spec`` is."""
    description: ClassVar[str] = ""
    sequence_keys: ClassVar[frozenset[str]] = frozenset(
        {"input_ids", "attention_mask", "mm_token_type_ids", "token_type_ids", "labels"}
    )
    """Keys of ``inputs`` that are ``[batch, seq]`` and get padded when samples are batched."""
    image_stack_keys: ClassVar[frozenset[str]] = frozenset()
    """Keys of ``inputs`` that are ``[batch, images, ...]`` stacks, one row per sample (processors
    that stack each sample's images per sample); batching pads their image axis with zeros, as
    those processors do. Every other non-sequence key is concatenated along dim 0."""
    image_sees_later_text: ClassVar[bool] = False
    """Whether image tokens attend to the text after them (a prefix-LM, where the prompt is read both
    ways). Their states then depend on each text, so an image prefix cannot be computed once for
    several texts: shared-prefix extraction runs such samples in full (exact either way)."""

    def __init__(self, config: PretrainedConfig, processor: ProcessorMixin) -> None:
        if config.model_type not in self.model_types:
            raise VisionInputError(
                f"adapter {self.name!r} cannot serve this config",
                found=f"model_type {config.model_type!r}",
                expected=f"one of {list(self.model_types)}",
                fix="pick the adapter with vlm_adapters.adapter_for(config)",
            )
        self.config = config
        self.processor = processor

    # --- construction --------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path_or_id: str | Path, **processor_kwargs: Any) -> Self:
        """Adapter for a checkpoint folder or hub id (config and stock processor from there)."""
        from .checkpoints import load_config

        config = load_config(path_or_id)
        processor = AutoProcessor.from_pretrained(str(path_or_id), **processor_kwargs)
        return cls(config, processor)

    @classmethod
    def from_tiny(cls, variant: str | None = None) -> Self:
        """Adapter for the tiny offline default: random-weight config, local tokenizer.

        Needs the optional :class:`~vlm_adapters.tiny.TinyFactory` methods; an adapter without
        them raises :class:`~vlm_adapters.errors.NoTinyFactoryError` naming the fix.
        """
        from .tiny import tiny_factory

        factory = tiny_factory(cls)
        config = factory.tiny_config(variant)
        return cls(config, factory.tiny_processor(config))

    @classmethod
    def variants(cls) -> tuple[str, ...]:
        """Names accepted by ``tiny_config(variant)``: one per served ``model_type`` by default."""
        return cls.model_types

    def load_model(
        self,
        path_or_id: str | Path | None = None,
        *,
        dtype: torch.dtype | str | None = None,
        seed: int = 0,
        **kwargs: Any,
    ) -> PreTrainedModel:
        """The stock model: ``from_pretrained(path_or_id)``, or random weights from ``self.config``."""
        model_cls = self.model_class()
        if path_or_id is not None:
            model = model_cls.from_pretrained(str(path_or_id), dtype=dtype, **kwargs)
        else:
            torch.manual_seed(seed)
            # from_config keeps the config object: a copy stops one model's settings (attention
            # implementation, dtype) from leaking into the adapter and every other model built from it.
            model = model_cls.from_config(copy.deepcopy(self.config), dtype=dtype, **kwargs)
        return model.eval()

    def model_class(self) -> Any:
        """The transformers class (or auto class) that loads this backbone."""
        return AutoModelForImageTextToText

    # --- spec ----------------------------------------------------------------------------
    @cached_property
    def spec(self) -> Spec:
        """The backbone's declared vision input, read from config and processor once."""
        return self.build_spec()

    @abstractmethod
    def build_spec(self) -> Spec:
        """Build the spec from ``self.config`` and ``self.processor``; never from literals."""

    @property
    def image_placeholder(self) -> str:
        """The text a prompt carries once per image, before the processor expands it."""
        token = getattr(self.processor, "image_token", None) or self.spec.image_token
        if token is None:
            raise NotImplementedError(f"{type(self).__name__} must define image_placeholder")
        return str(token)

    def format_prompt(self, text: str, num_images: int = 1, answer: str | None = None) -> str:
        """A chat-templated prompt with ``num_images`` image placeholders and ``text``.

        With ``answer``, it is appended as the assistant turn (teacher forcing, as grounding
        pipelines do with captions or referring expressions).
        """
        for name, value in (("text", text), ("answer", answer)):
            if not isinstance(value, str) and not (name == "answer" and value is None):
                raise VisionInputError(
                    f"format_prompt: {name} is not a string",
                    found=type(value).__name__,
                    expected="str" + (" or None" if name == "answer" else ""),
                    fix=f"pass the {name} as text",
                )
        if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 0:
            raise VisionInputError(
                "format_prompt: num_images is not a count",
                found=repr(num_images),
                expected="an int >= 0",
                fix="pass how many images the prompt refers to",
            )
        content: list[dict[str, str]] = [{"type": "image"} for _ in range(num_images)]
        content.append({"type": "text", "text": text})
        messages: list[dict[str, Any]] = [{"role": "user", "content": content}]
        if answer is not None:
            messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
        prompt = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=answer is None)
        return str(prompt)

    # --- building inputs -----------------------------------------------------------------
    def prepare(
        self,
        images: Sequence[RawImage] | Sequence[Sequence[RawImage]] | RawImage,
        texts: Sequence[str] | str,
    ) -> VisionBatch:
        """A batch from raw images and prompts, through the stock processor.

        ``texts[b]`` holds one :attr:`image_placeholder` per image of sample ``b``;
        ``images`` is one image, one image per sample, or a list of images per sample.
        """
        if not isinstance(texts, str) and not (
            isinstance(texts, Sequence) and texts and all(isinstance(t, str) for t in texts)
        ):
            raise VisionInputError(
                "prepare: texts are not prompts",
                found=repr(texts)[:80],
                expected="a prompt string, or a non-empty list of them (one per sample)",
                fix="build prompts with adapter.format_prompt(text, num_images=...)",
            )
        text_list = [texts] if isinstance(texts, str) else list(texts)
        per_sample = self._group_images(images, len(text_list))
        for b, (text, imgs) in enumerate(zip(text_list, per_sample, strict=True)):
            n = text.count(self.image_placeholder)
            if n != len(imgs):
                raise TokenCountError(
                    f"sample {b}: placeholders and images differ",
                    found=f"{n} {self.image_placeholder!r} placeholder(s) for {len(imgs)} image(s)",
                    expected="one placeholder per image",
                    fix="build prompts with adapter.format_prompt(text, num_images=...)",
                )
        form = self.pixel_form
        flat = [
            raw_image(img, form, f"images[{b}][{i}]") for b, imgs in enumerate(per_sample) for i, img in enumerate(imgs)
        ]
        sizes = [[image_size(img) for img in imgs] for imgs in per_sample]
        for size in (s for per in sizes for s in per):
            self.spec.geometry(size)  # ImageShapeError for a shape the stock processor refuses (or mangles)
        out = self.processor(images=flat or None, text=text_list, return_tensors="pt", padding=True)
        inputs = {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}
        return self.finish_batch(inputs, sizes)

    def _group_images(self, images: Any, num_samples: int) -> list[list[RawImage]]:
        """Images per sample: one image, one per sample, a list per sample, or a BCHW/BHWC stack."""
        if is_raw_image(images):
            images = [images]
        elif isinstance(images, (torch.Tensor, np.ndarray)) and images.ndim == 4:
            images = list(images)
        items = list(images)
        if items and all(isinstance(x, (list, tuple)) for x in items):
            groups = [list(x) for x in items]
        elif len(items) == num_samples:
            groups = [[x] for x in items]
        elif num_samples == 1:
            groups = [items]
        else:
            raise TokenCountError(
                "cannot tell which image belongs to which prompt",
                found=f"{len(items)} images for {num_samples} prompts",
                expected="one image per prompt, or a list of images per prompt",
                fix="pass images as [[img_a1, img_a2], [img_b1]] for several images per prompt",
            )
        if len(groups) != num_samples:
            raise TokenCountError(
                "image lists and prompts differ in number",
                found=f"{len(groups)} image lists for {num_samples} prompts",
                expected="one image list per prompt",
                fix="give every prompt its list of images (an empty list for a text-only prompt)",
            )
        return groups

    def finish_batch(
        self,
        inputs: dict[str, torch.Tensor],
        original_sizes: Sequence[Sequence[tuple[int, int]]],
        mask_ids: torch.Tensor | None = None,
        geometries: list[list[ImageGeometry]] | None = None,
    ) -> VisionBatch:
        """Attach geometry (``geometries`` where already known, else :meth:`geometries_for`) and
        image-token positions to the stock forward's inputs."""
        if geometries is None:
            geometries = self.geometries_for(inputs, original_sizes)
        positions = [self.image_positions(inputs["input_ids"][b], geos, sample=b) for b, geos in enumerate(geometries)]
        return VisionBatch(inputs=inputs, geometries=geometries, image_token_positions=positions, mask_ids=mask_ids)

    def geometries_for(
        self, inputs: Mapping[str, torch.Tensor], original_sizes: Sequence[Sequence[tuple[int, int]]]
    ) -> list[list[ImageGeometry]]:
        """Geometry per image; by default the spec's answer for each original size."""
        return [[self.spec.geometry(s) for s in sizes] for sizes in original_sizes]

    def normalize(self, sample: Mapping[str, Any]) -> VisionBatch:
        """A one-sample batch from a dataset-style dict: validate, repair only what is exactly
        recoverable, and raise :class:`VisionInputError` for everything else.

        One procedure for every backbone (``docs/normalize.md``): the core reads ids, sizes and
        pixels with one policy, :meth:`resolve_images` turns the images into the stock forward's
        pixel inputs and geometries, and the core checks the sources against each other.
        """
        return normalize_sample(self, sample)

    def collate(self, samples: Sequence[Mapping[str, Any]]) -> VisionBatch:
        """``normalize`` each sample and pad them into one batch."""
        if isinstance(samples, Mapping) or not isinstance(samples, Sequence) or not samples:
            raise VisionInputError(
                "collate takes a non-empty list of samples",
                found=type(samples).__name__ + (" (empty)" if isinstance(samples, Sequence) else ""),
                expected="a list of dataset dicts",
                fix="pass [sample, ...]; normalize(sample) takes a single one",
            )
        return concat_batches(
            [self.normalize(s) for s in samples],
            self.pad_token_id,
            self.padding_side,
            self.sequence_keys,
            self.image_stack_keys,
        )

    @property
    def pad_token_id(self) -> int:
        tok = self.processor.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        return int(pad or 0)

    @property
    def padding_side(self) -> str:
        return str(getattr(self.processor.tokenizer, "padding_side", "right"))

    # --- where the image tokens are ------------------------------------------------------
    def image_positions(
        self, input_ids: torch.Tensor, geometries: Sequence[ImageGeometry], sample: int = 0
    ) -> list[torch.Tensor]:
        """Positions of each image's tokens in a 1-D ``input_ids``, in sequence order.

        Image ``i`` owns the next ``geometries[i].num_image_tokens`` tokens with the image token
        id, and they must form exactly its runs (``geometry.run_lengths``): one contiguous run for
        most layouts, several with text between them for crops and sub-images. Adjacent images may
        share a run, since some prompt formats put nothing between them.
        """
        found = (input_ids == self.spec.image_token_id).nonzero().flatten()
        counts = [g.num_image_tokens for g in geometries]
        if found.numel() != sum(counts):
            raise TokenCountError(
                f"sample {sample}: image-token count does not match the images",
                found=f"{found.numel()} tokens of id {self.spec.image_token_id}",
                expected=f"{sum(counts)} ({describe_counts(geometries)})",
                fix="expand each image placeholder with the stock processor, or re-tokenize the prompt "
                "with adapter.prepare()",
            )
        spans = list(found.split(counts)) if counts else []
        for i, (span, geometry) in enumerate(zip(spans, geometries, strict=True)):
            runs = contiguous_runs(span)
            if runs != geometry.run_lengths:
                raise TokenCountError(
                    f"sample {sample}: image {i}'s tokens are not laid out as its views need",
                    found=f"runs of {runs} tokens over positions {int(span[0])}..{int(span[-1])}",
                    expected=f"runs of {geometry.run_lengths} ({describe_counts([geometry])}), images in order",
                    fix="expand each placeholder in place with the stock processor; do not insert or drop text "
                    "inside an image's tokens",
                )
        return spans

    def tokens_to_views(self, x: torch.Tensor, geometry: ImageGeometry, dim: int = -1) -> list[torch.Tensor]:
        """Split the image-token axis ``dim`` of ``x`` into one ``[..., rows, cols]`` per view.

        Works for any per-token tensor (attention columns, hidden states). Row separators (e.g. a
        newline token per row) are dropped; views with a temporal axis give ``[..., t, rows, cols]``.
        """
        if x.shape[dim] != geometry.num_image_tokens:
            raise TokenCountError(
                "tensor axis is not this image's tokens",
                found=f"axis {dim} of size {x.shape[dim]}",
                expected=f"{geometry.num_image_tokens} image tokens ({describe_counts([geometry])})",
                fix="slice the axis with batch.image_token_positions for this image first",
            )
        x = x.movedim(dim, -1)
        out = []
        for view in geometry.views:
            rows, cols = view.token_grid
            part = x[..., view.offset : view.end]
            part = rearrange(part, "... (t r c) -> ... t r c", t=view.temporal, r=rows, c=cols + view.row_separators)
            part = part[..., :cols]
            out.append(part[..., 0, :, :] if view.temporal == 1 else part)
        return out

    def tokens_to_grid(self, x: torch.Tensor, geometry: ImageGeometry, dim: int = -1) -> torch.Tensor:
        """Move the image-token axis ``dim`` of ``x`` to the end as ``[..., rows, cols]``.

        For single-view images (a multi-view image raises :class:`~vlm_adapters.geometry.ViewError`:
        use :meth:`tokens_to_views`). Images with a temporal axis give ``[..., t, rows, cols]``.
        """
        geometry.view  # noqa: B018  (the typed error for multi-view images)
        return self.tokens_to_views(x, geometry, dim)[0]

    def views_to_tokens(self, maps: Sequence[torch.Tensor], geometry: ImageGeometry) -> torch.Tensor:
        """Inverse of :meth:`tokens_to_views` (``dim=-1``); row separators and gaps are filled with 0."""
        lead = maps[0].shape[:-3] if geometry.views[0].temporal > 1 else maps[0].shape[:-2]
        out = maps[0].new_zeros(*lead, geometry.num_image_tokens)
        for view, m in zip(geometry.views, maps, strict=True):
            m = m if view.temporal > 1 else m.unsqueeze(-3)
            m = torch.nn.functional.pad(m, (0, view.row_separators))
            out[..., view.offset : view.end] = rearrange(m, "... t r c -> ... (t r c)")
        return out

    def grid_to_tokens(self, maps: torch.Tensor, geometry: ImageGeometry) -> torch.Tensor:
        """Inverse of :meth:`tokens_to_grid` (with ``dim=-1``)."""
        return self.views_to_tokens([maps], geometry)


def contiguous_runs(positions: torch.Tensor) -> list[int]:
    """Lengths of the maximal runs of consecutive values in sorted 1-D ``positions``."""
    if positions.numel() == 0:
        return []
    breaks = (torch.diff(positions) != 1).nonzero().flatten() + 1
    edges = [0, *breaks.tolist(), positions.numel()]
    return [b - a for a, b in pairwise(edges)]


def describe_counts(geometries: Sequence[ImageGeometry]) -> str:
    """``"576 for 1 image"`` or, per view, ``"image 0: base 576 + high_res 1900 (+ 44 separators)"``."""
    if not geometries:
        return "0 for 0 images"
    if all(g.is_single_view for g in geometries):
        counts = [g.num_image_tokens for g in geometries]
        return f"{' + '.join(map(str, counts))} for {len(counts)} image(s)"
    parts = []
    for i, g in enumerate(geometries):
        views = " + ".join(f"{v.name} {v.num_tokens}" for v in g.views)
        gaps = g.num_image_tokens - sum(v.num_tokens for v in g.views)
        parts.append(f"image {i}: {views}" + (f" (+ {gaps} separators)" if gaps else ""))
    return "; ".join(parts)


def concat_batches(
    batches: Sequence[VisionBatch],
    pad_token_id: int,
    padding_side: str = "right",
    sequence_keys: frozenset[str] = BackboneAdapter.sequence_keys,
    image_stack_keys: frozenset[str] = BackboneAdapter.image_stack_keys,
) -> VisionBatch:
    """Pad per-sample batches to one length and concatenate them along the batch axis.

    Sequence tensors (``[b, seq]``) are padded; per-sample image stacks (``[b, images, ...]``,
    ``image_stack_keys``) are zero-padded to the most images; everything else (pixels, grids) is
    concatenated along dim 0, which is how most stock processors batch images.
    """
    if len(batches) == 1:
        return batches[0]
    seq_len = max(b.input_ids.shape[1] for b in batches)
    pad_values = {"input_ids": pad_token_id, "labels": -100}
    out: dict[str, list[torch.Tensor]] = {}
    positions: list[list[torch.Tensor]] = []
    mask_ids: list[torch.Tensor] = []
    for batch in batches:
        n = seq_len - batch.input_ids.shape[1]
        left = n if padding_side == "left" else 0
        for key, value in batch.inputs.items():
            if key in sequence_keys:
                pad = (left, n - left)
                value = torch.nn.functional.pad(value, pad, value=pad_values.get(key, 0))
            elif key in image_stack_keys:
                most = max(b.inputs[key].shape[1] for b in batches if key in b.inputs)
                value = torch.cat([value, value.new_zeros(value.shape[0], most - value.shape[1], *value.shape[2:])], 1)
            out.setdefault(key, []).append(value)
        positions.extend([[p + left for p in sample] for sample in batch.image_token_positions])
        ids = batch.mask_ids if batch.mask_ids is not None else torch.full_like(batch.input_ids, -1)
        mask_ids.append(torch.nn.functional.pad(ids, (left, n - left), value=-1))
    has_mask = any(b.mask_ids is not None for b in batches)
    extras: dict[str, object] = {}
    for key in dict.fromkeys(k for b in batches for k in b.extras):  # per-sample lists, concatenated
        extras[key] = [item for b in batches for item in _as_list(b.extras.get(key), b.batch_size)]
    return VisionBatch(
        inputs={k: torch.cat(v, dim=0) for k, v in out.items()},
        geometries=[g for b in batches for g in b.geometries],
        image_token_positions=positions,
        mask_ids=torch.cat(mask_ids, dim=0) if has_mask else None,
        extras=extras,
    )


def _as_list(value: object, batch_size: int) -> list[object]:
    """A batch's ``extras`` entry as one item per sample (``None`` where the batch had none)."""
    if isinstance(value, list) and len(value) == batch_size:
        return value
    return [value] * batch_size
