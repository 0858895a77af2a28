"""``FrozenLMM``: the frozen-LMM grounding forward for any registered backbone.

One forward at SDPA cost hands back what an F-LMM-style mask head consumes: word-to-image
attention on each image's token grid (true spatial order), the hidden states of the same
words, and the geometry to map any map back onto the original pixels. Nothing here knows a
backbone: the adapter says where image tokens are and how they form a grid.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from .adapter import BackboneAdapter
from .batch import VisionBatch
from .capture import CaptureRequest, capture_attention
from .errors import VisionInputError
from .geometry import ImageGeometry, Size
from .images import RawImage
from .registry import adapter_for, get_adapter

Reduce = Literal["mean", "max"]

LOSS_ONLY_KEYS = frozenset({"labels"})
"""Batch inputs the frozen forward must not see: with them the model computes a loss."""


@dataclass
class FrozenOutput:
    """What one sample's forward gives the grounding head.

    * ``view_attention[i][v]``: view ``v`` of image ``i``, fp32 ``[layers, heads, queries, rows, cols]``
      (row separators such as newline tokens dropped; they stay in ``image_attention``).
    * ``image_attention[i]``: every image token of image ``i``, ``[layers, heads, queries, tokens]``
      in sequence order, separators included.
    * ``attention[i]``: the single view of image ``i`` (single-view images only).
    * ``hidden_states``: ``[layers + 1, queries, dim]`` (index 0 = decoder input), model dtype.
    * ``query_positions`` / ``query_token_ids``: which token each query row is.
    * ``mask_ids``: object index per query (-1 = ungrounded), when the batch carried them.
    """

    view_attention: list[list[torch.Tensor]]
    hidden_states: torch.Tensor | None
    query_positions: torch.Tensor
    query_token_ids: torch.Tensor
    geometries: list[ImageGeometry]
    layers: list[int]
    mask_ids: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    timings: dict[str, float] = field(default_factory=dict)
    image_attention: list[torch.Tensor] = field(default_factory=list)

    @property
    def num_queries(self) -> int:
        return int(self.query_positions.numel())

    @property
    def attention(self) -> list[torch.Tensor]:
        """Per image, its one view's maps ``[layers, heads, queries, rows, cols]``; a
        :class:`ViewError` if an image has several views (use ``view_attention``)."""
        for geometry in self.geometries:
            geometry.view  # noqa: B018  (the typed error for multi-view images)
        return [views[0] for views in self.view_attention]

    def phrase_maps(
        self,
        object_ids: torch.Tensor | None = None,
        reduce: Reduce = "mean",
        image: int = 0,
        view: int | None = None,
    ) -> torch.Tensor:
        """Mask-head input ``[K, layers*heads, rows, cols]``: query rows of object ``k`` reduced.

        ``object_ids`` (per query, -1 = none) defaults to the batch's ``mask_ids``. Objects are
        ``0..K-1`` with ``K = max id + 1``; an object with no token gives an all-zero map. ``view``
        picks the view of a multi-view image (see :meth:`phrase_maps_per_view` and
        :meth:`fused_phrase_maps`).
        """
        index = self._view_index(image, view)
        return self._pool(self.view_attention[image][index], self._object_ids(object_ids), reduce)

    def phrase_maps_per_view(
        self, object_ids: torch.Tensor | None = None, reduce: Reduce = "mean", image: int = 0
    ) -> list[torch.Tensor]:
        """:meth:`phrase_maps` of every view of ``image``, in view order."""
        self._image_index(image)
        ids = self._object_ids(object_ids)
        return [self._pool(maps, ids, reduce) for maps in self.view_attention[image]]

    def fused_phrase_maps(
        self,
        object_ids: torch.Tensor | None = None,
        reduce: Reduce = "mean",
        image: int = 0,
        size: Size | None = None,
    ) -> torch.Tensor:
        """``[K, layers*heads, H, W]`` on the original image (or at ``size``): the views' phrase maps
        fused by their boxes (see :meth:`ImageGeometry.to_image`)."""
        return self.to_image(self.phrase_maps_per_view(object_ids, reduce, image), image=image, size=size)

    def phrase_hidden_states(
        self, object_ids: torch.Tensor | None = None, layers: Sequence[int] | None = None
    ) -> list[torch.Tensor]:
        """Per object, the hidden states of its tokens: ``[layers, tokens_k, dim]`` each.

        ``layers`` index ``hidden_states`` (default: every decoder layer output, 1..L); the
        F-LMM head mixes the last few with learned weights, which stays the caller's job.
        """
        if self.hidden_states is None:
            raise VisionInputError(
                "this forward kept no hidden states",
                found="hidden_states=None",
                expected="a forward run with hidden_states=True",
                fix="call FrozenLMM(batch, hidden_states=True)",
            )
        ids = self._object_ids(object_ids)
        count = self.hidden_states.shape[0]
        chosen = list(layers) if layers is not None else list(range(1, count))
        bad = [v for v in chosen if not isinstance(v, int) or isinstance(v, bool) or not -count <= v < count]
        if bad:
            raise VisionInputError(
                "hidden-state layers out of range",
                found=bad,
                expected=f"ints in {-count}..{count - 1} (0 = decoder input)",
                fix="pick layers that exist",
            )
        hs = self.hidden_states[chosen]
        return [hs[:, ids == k] for k in range(int(ids.max()) + 1)]

    def to_image(
        self, maps: torch.Tensor | Sequence[torch.Tensor], image: int = 0, size: Size | None = None
    ) -> torch.Tensor:
        """Maps of image ``image`` onto its original pixels (or ``size``): a ``[..., rows, cols]``
        map of a single-view image, or one map per view, fused."""
        self._image_index(image)
        per_view = maps if isinstance(maps, torch.Tensor) else list(maps)
        return self.geometries[image].to_image(per_view, size=size)

    @staticmethod
    def _pool(maps: torch.Tensor, ids: torch.Tensor, reduce: Reduce) -> torch.Tensor:
        if reduce not in ("mean", "max"):
            raise VisionInputError(
                "unknown reduce mode", found=repr(reduce), expected="'mean' or 'max'", fix="pass reduce='mean' or 'max'"
            )
        flat = maps.flatten(0, 1).transpose(0, 1)  # [Q, L*H, r, c]
        return torch.stack([_reduce(flat[ids == k], reduce, flat.shape[1:]) for k in range(int(ids.max()) + 1)])

    def _image_index(self, image: int) -> int:
        n = len(self.geometries)
        if not isinstance(image, int) or isinstance(image, bool) or not 0 <= image < n:
            raise VisionInputError(
                "no such image in this sample",
                found=repr(image),
                expected=f"an image index in 0..{n - 1}" if n else "no image index (the sample has no image)",
                fix="pass image=i for the i-th image of the sample",
            )
        return image

    def _view_index(self, image: int, view: int | None) -> int:
        geometry = self.geometries[self._image_index(image)]
        if view is None:
            geometry.view  # noqa: B018  (the typed error for multi-view images)
            return 0
        n = geometry.num_views
        if not isinstance(view, int) or isinstance(view, bool) or not 0 <= view < n:
            raise VisionInputError(
                "no such view in this image",
                found=repr(view),
                expected=f"a view index in 0..{n - 1} ({[v.name for v in geometry.views]})",
                fix="pass view=v, or use phrase_maps_per_view / fused_phrase_maps",
            )
        return view

    def _object_ids(self, object_ids: torch.Tensor | None) -> torch.Tensor:
        ids = object_ids if object_ids is not None else self.mask_ids
        if ids is None:
            raise VisionInputError(
                "no object ids for the query tokens",
                found="mask_ids=None",
                expected=f"{self.num_queries} ids (one per query, -1 for ungrounded words)",
                fix="pass object_ids=, or give normalize() a sample with mask_ids",
            )
        ids = torch.as_tensor(ids).to(self.query_positions.device)
        if ids.shape != self.query_positions.shape:
            raise VisionInputError(
                "object ids do not line up with the query tokens",
                found=f"{tuple(ids.shape)} ids",
                expected=f"({self.num_queries},)",
                fix="give one id per query token (FrozenOutput.query_positions)",
            )
        if ids.numel() == 0 or int(ids.max()) < 0:
            raise VisionInputError(
                "no query token belongs to an object",
                found="every object id is -1",
                expected="ids 0..K-1 on the phrase tokens",
                fix="check that mask_ids cover tokens after the image (the queries)",
            )
        return ids


def _reduce(rows: torch.Tensor, how: Reduce, shape: torch.Size) -> torch.Tensor:
    if rows.shape[0] == 0:
        return torch.zeros(shape, dtype=rows.dtype, device=rows.device)
    return rows.mean(0) if how == "mean" else rows.amax(0)


class FrozenLMM:
    """A frozen VLM plus its adapter: prepare inputs, run one forward, capture the maps."""

    def __init__(self, model: Any, adapter: BackboneAdapter) -> None:
        self.model = model.eval().requires_grad_(False)
        self.adapter = adapter

    # --- construction --------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        path_or_id: str | Path,
        adapter: str | None = None,
        *,
        dtype: torch.dtype | str | None = None,
        device: torch.device | str | None = None,
        device_map: Any = None,
        **model_kwargs: Any,
    ) -> FrozenLMM:
        """Load a checkpoint; the adapter comes from its ``model_type`` unless named."""
        adapter_cls = get_adapter(adapter) if adapter else adapter_for(path_or_id)
        bound = adapter_cls.from_pretrained(path_or_id)
        if device_map is not None:
            model_kwargs["device_map"] = device_map
        model: Any = bound.load_model(path_or_id, dtype=dtype, **model_kwargs)
        if device is not None and device_map is None:
            model = model.to(torch.device(device))
        return cls(model, bound)

    @classmethod
    def from_tiny(
        cls,
        adapter: str,
        variant: str | None = None,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        seed: int = 0,
    ) -> FrozenLMM:
        """The offline default: the adapter's tiny config with random weights."""
        bound = get_adapter(adapter).from_tiny(variant)
        model: Any = bound.load_model(dtype=dtype, seed=seed)
        if device is not None:
            model = model.to(torch.device(device))
        return cls(model, bound)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    # --- running -------------------------------------------------------------------------
    def prepare(self, images: Sequence[Any] | RawImage, texts: Sequence[str] | str) -> VisionBatch:
        return self.adapter.prepare(images, texts)

    def default_queries(self, batch: VisionBatch, b: int) -> torch.Tensor:
        """Every real text token after the first image of sample ``b``, each image's span excluded:
        its image tokens and the markers between its runs (pan-and-scan crops, sub-images), which
        belong to the image, not to the text."""
        ids = batch.input_ids[b]
        valid = batch.inputs["attention_mask"][b].bool() if "attention_mask" in batch.inputs else torch.ones_like(ids)
        positions = batch.image_token_positions[b]
        after = int(positions[0][0]) if positions else 0
        is_image = torch.zeros_like(valid)
        for p in positions:
            is_image[int(p[0]) : int(p[-1]) + 1] = True
        keep = valid & ~is_image
        keep[:after] = False
        return keep.nonzero().flatten()

    def check_layers(self, layers: Sequence[int] | None) -> list[int] | None:
        """Decoder layers asked for: distinct ints (negative allowed) that the model has."""
        if layers is None:
            return None
        count = int(self.model.config.get_text_config().num_hidden_layers)
        values = list(layers) if isinstance(layers, Sequence) and not isinstance(layers, str) else None
        ok = values is not None and len(values) > 0
        ok = ok and all(isinstance(v, int) and not isinstance(v, bool) and -count <= v < count for v in values or [])
        ok = ok and len({v % count for v in values or []}) == len(values or [])
        if not ok:
            raise VisionInputError(
                "layers do not fit the model",
                found=repr(layers)[:80],
                expected=f"a non-empty list of distinct ints in {-count}..{count - 1} ({count} decoder layers)",
                fix="pick decoder layers that exist, or leave layers out for all of them",
            )
        return values

    def check_queries(self, batch: VisionBatch, b: int, queries: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """Explicit query positions of sample ``b``: positions in the *batched* (padded) sequence,
        on real tokens, not on image tokens."""
        try:
            q = torch.as_tensor(queries).detach().cpu().flatten()
        except (TypeError, ValueError, RuntimeError):
            q = torch.empty(0, dtype=torch.float32)
            q_ok = False
        else:
            q_ok = not (q.is_floating_point() or q.is_complex() or q.dtype == torch.bool) and q.numel() > 0
        if not q_ok:
            raise VisionInputError(
                f"sample {b}: query positions are not a non-empty list of ints",
                found=repr(queries)[:80],
                expected="token positions (ints) of the batched sequence",
                fix="take positions from the batch's input_ids, e.g. with vlm_adapters.phrases.find_phrase",
            )
        q = q.long()
        seq = batch.input_ids.shape[1]
        valid = batch.inputs["attention_mask"][b].bool().cpu() if "attention_mask" in batch.inputs else None
        is_image = torch.zeros(seq, dtype=torch.bool)
        for p in batch.image_token_positions[b]:
            is_image[p] = True
        bad = [int(p) for p in q if not 0 <= int(p) < seq or (valid is not None and not valid[p]) or is_image[p]]
        if bad:
            raise VisionInputError(
                f"sample {b}: query positions that are not text tokens",
                found=f"positions {bad[:8]}",
                expected=f"positions of real, non-image tokens in 0..{seq - 1} of the padded batch",
                fix="take positions from the batch's input_ids (left padding shifts them), e.g. with "
                "vlm_adapters.phrases.find_phrase",
            )
        return q

    def __call__(
        self,
        batch: VisionBatch,
        *,
        layers: Sequence[int] | None = None,
        queries: Sequence[torch.Tensor] | None = None,
        hidden_states: bool = True,
        logits: bool = False,
    ) -> list[FrozenOutput]:
        """One forward; a :class:`FrozenOutput` per sample.

        ``queries[b]`` (positions in sample ``b``) defaults to :meth:`default_queries`;
        ``layers`` defaults to every decoder layer. Vocabulary logits only when ``logits``.
        """
        start = time.perf_counter()
        _require_batch(batch)
        layers = self.check_layers(layers)
        q_list = self.resolve_queries(batch, queries)
        k_list = [torch.cat(p) if p else torch.empty(0, dtype=torch.long) for p in batch.image_token_positions]
        request = CaptureRequest(
            query_positions=pad_positions(q_list),
            key_positions=pad_positions(k_list),
            layers=layers,
            hidden_states=hidden_states,
        )
        moved = batch.to(self.device, self.dtype)
        inputs = {k: v for k, v in moved.inputs.items() if k not in LOSS_ONLY_KEYS}
        output, cap = capture_attention(self.model, inputs, request, logits_to_keep=0 if logits else 1)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        timings = {"forward_s": time.perf_counter() - start}
        attention = cap.attention  # [B, L, H, Q, K]
        hidden = cap.hidden_states
        return [
            self.sample_output(
                batch,
                b,
                q_list[b],
                attention[b],
                hidden[b] if hidden is not None else None,
                cap.layers,
                logits=output.logits[b] if logits else None,
                timings=timings,
            )
            for b in range(batch.batch_size)
        ]

    def resolve_queries(
        self, batch: VisionBatch, queries: Sequence[torch.Tensor] | torch.Tensor | None
    ) -> list[torch.Tensor]:
        """The query positions of every sample: checked when given, :meth:`default_queries` when not."""
        _require_batch(batch)
        if queries is not None and (
            isinstance(queries, str)
            or (isinstance(queries, torch.Tensor) and queries.ndim != 2)
            or not isinstance(queries, (Sequence, torch.Tensor))
            or len(queries) != batch.batch_size
        ):
            raise VisionInputError(
                "queries do not give one set of positions per sample",
                found=type(queries).__name__ + (f" of length {len(queries)}" if hasattr(queries, "__len__") else ""),
                expected=f"a list of {batch.batch_size} position lists/tensors",
                fix="pass queries=[positions_of_sample_0, ...], or leave it out for every text token after the image",
            )
        if queries is None:
            return [self.default_queries(batch, b) for b in range(batch.batch_size)]
        return [self.check_queries(batch, b, q) for b, q in enumerate(queries)]

    def sample_output(
        self,
        batch: VisionBatch,
        b: int,
        queries: torch.Tensor,
        attention: torch.Tensor,
        hidden: torch.Tensor | None,
        layers: Sequence[int],
        *,
        logits: torch.Tensor | None = None,
        timings: dict[str, float] | None = None,
    ) -> FrozenOutput:
        """Sample ``b``'s output from its captured rows, however the forward ran (one pass, or a
        shared prefix and a continuation): ``attention`` ``[layers, heads, >= Q, K]`` over the
        sample's image tokens in order, ``hidden`` ``[layers + 1, >= Q, dim]``."""
        nq = queries.numel()
        per_image, per_view = [], []
        offset = 0
        for g in batch.geometries[b]:
            cols = attention[:, :, :nq, offset : offset + g.num_image_tokens]
            per_image.append(cols)
            per_view.append(self.adapter.tokens_to_views(cols, g, dim=-1))
            offset += g.num_image_tokens
        return FrozenOutput(
            view_attention=per_view,
            image_attention=per_image,
            hidden_states=hidden[:, :nq] if hidden is not None else None,
            query_positions=queries,
            query_token_ids=batch.input_ids[b][queries],
            geometries=list(batch.geometries[b]),
            layers=list(layers),
            mask_ids=batch.mask_ids[b][queries] if batch.mask_ids is not None else None,
            logits=logits,
            timings=dict(timings or {}),
        )

    def run(self, images: Sequence[Any] | RawImage, texts: Sequence[str] | str, **kwargs: Any) -> list[FrozenOutput]:
        """``prepare`` then call: raw images and prompts in, one output per sample."""
        return self(self.prepare(images, texts), **kwargs)


def _require_batch(batch: Any) -> None:
    if not isinstance(batch, VisionBatch):
        raise VisionInputError(
            "FrozenLMM takes a VisionBatch",
            found=type(batch).__name__,
            expected="the result of adapter.prepare / normalize / collate",
            fix="build the batch with lmm.prepare(images, texts) or lmm.adapter.normalize(sample)",
        )


def pad_positions(rows: Sequence[torch.Tensor], value: int = -1) -> torch.Tensor:
    """``[batch, max_len]`` of 1-D ``rows``, right-padded with ``value`` (-1 for positions: what
    ``CaptureRequest`` expects); the rows' dtype is kept."""
    width = max((r.numel() for r in rows), default=0)
    out = torch.full((len(rows), width), value, dtype=rows[0].dtype if rows else torch.long)
    for i, r in enumerate(rows):
        out[i, : r.numel()] = r
    return out
