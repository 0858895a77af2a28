"""A bad-input corpus for ``normalize``: mutations of valid samples, and an oracle for what is accepted.

Every adapter promises that a dataset sample is either turned into a consistent batch or refused
with a :class:`~vlm_adapters.VisionInputError`. The corpus holds it to that: valid samples in the
processor format and the research formats (placeholder ids, ``meta_data``, raw images, numpy)
are mutated one way or several ways at once, and each outcome is classified:

* ``refused``: a typed error (what every mutation marked ``refuse`` must get);
* ``accepted``: a batch that passes the :func:`oracle` (image tokens match each image's
  geometry, ids and labels lie in the vocabulary, masks are binary and not empty, one stock
  forward runs, the caller's sample is untouched);
* ``crash``: any other exception (a bare ``TypeError`` from deep inside);
* ``silent``: a ``refuse`` mutation that was accepted, or an accepted batch the oracle rejects.

Nothing here knows a backbone or a layout: mutations act on the sample's keys, so a third-party
adapter gets the same corpus.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from ..adapter import BackboneAdapter
from ..batch import VisionBatch
from ..errors import VisionInputError
from .images import smooth_image

Sample = dict[str, Any]
ACCEPTED_WRONG = "accepted a sample that must be refused"
Expect = Literal["refuse", "either"]
Mutate = Callable[[Sample, BackboneAdapter, np.random.Generator], Sample | None]


@dataclass(frozen=True)
class Mutation:
    """One way to spoil (or merely re-wrap) a sample; ``apply`` returns ``None`` where it does not apply."""

    name: str
    expect: Expect
    apply: Mutate


@dataclass
class Outcome:
    base: str
    mutations: tuple[str, ...]
    kind: Literal["refused", "accepted", "crash", "silent"]
    detail: str = ""

    @property
    def label(self) -> str:
        return f"{self.base} + {' + '.join(self.mutations)}"


@dataclass
class CorpusReport:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def counts(self) -> Counter[str]:
        return Counter(o.kind for o in self.outcomes)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.kind in ("crash", "silent")]

    def failures_except(self, unobservable: Iterable[str]) -> list[Outcome]:
        """The failures, less acceptances of mistakes in ``unobservable`` (mutation names an adapter
        declares no input of its can show: taken as given, as documented). Crashes always count."""
        allowed = set(unobservable)
        refuse = {m.name for m in MUTATIONS if m.expect == "refuse"}
        return [
            o
            for o in self.failures
            if not (
                o.kind == "silent" and o.detail == ACCEPTED_WRONG and {n for n in o.mutations if n in refuse} <= allowed
            )
        ]

    def describe(self, limit: int = 12) -> str:
        lines = [f"{o.kind}: {o.label}: {o.detail}" for o in self.failures[:limit]]
        more = len(self.failures) - limit
        return "\n".join(lines + ([f"... and {more} more"] if more > 0 else []))


# --- valid samples in several formats ----------------------------------------------------------
def _prompt(adapter: BackboneAdapter) -> str:
    return adapter.format_prompt("where is the red cat", num_images=1, answer="the cat on the left")


def _with_companions(sample: Sample, ids: torch.Tensor) -> Sample:
    mask = torch.full_like(ids, -1)
    mask[-4:-1] = 0
    labels = ids.clone()
    labels[: ids.numel() // 2] = -100
    return {**sample, "input_ids": ids, "mask_ids": mask, "labels": labels}


def base_samples(adapter: BackboneAdapter, size: tuple[int, int] = (60, 90), seed: int = 0) -> dict[str, Sample]:
    """Valid one-image samples: the processor's format and the research formats."""
    image = smooth_image(*size, seed=seed)
    prompt = _prompt(adapter)
    batch = adapter.prepare([image], [prompt])
    processed: Sample = {k: v for k, v in batch.inputs.items() if k != "attention_mask"}
    for key, value in list(processed.items()):
        if key in adapter.sequence_keys:
            processed[key] = value[0]
    processed["image_sizes"] = [list(size)]
    processed = _with_companions(processed, batch.input_ids[0])
    placeholder_ids = torch.as_tensor(adapter.processor.tokenizer(prompt)["input_ids"])
    placeholder = _with_companions(
        {k: v for k, v in processed.items() if k not in adapter.sequence_keys}, placeholder_ids
    )
    meta = {k: v for k, v in processed.items() if k != "image_sizes"}
    meta["meta_data"] = [{"original_shape": {"height": size[0], "width": size[1]}}]
    raw = _with_companions({"image": image}, placeholder_ids)
    as_numpy = {**processed, "pixel_values": processed["pixel_values"].numpy()}
    return {"processor": processed, "placeholder": placeholder, "meta_data": meta, "raw": raw, "numpy": as_numpy}


# --- mutations ---------------------------------------------------------------------------------
def _vocab(adapter: BackboneAdapter) -> int:
    return int(adapter.config.get_text_config().vocab_size)


def _on(key: str, fn: Callable[[Any, BackboneAdapter, np.random.Generator], Any]) -> Mutate:
    """A mutation of ``sample[key]`` (not applicable when the key is absent)."""

    def apply(sample: Sample, adapter: BackboneAdapter, rng: np.random.Generator) -> Sample | None:
        if sample.get(key) is None:
            return None
        value = fn(sample[key], adapter, rng)
        if value is _SKIP:
            return None
        return {**sample, key: value}

    return apply


_SKIP = object()


def _tensor(x: Any) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))


def _set_one(x: Any, value: int) -> Any:
    t = _tensor(x).clone().reshape(-1)
    t[t.numel() // 3] = value
    return t


def _pixels_of(sample: Sample) -> str | None:
    return "pixel_values" if isinstance(sample.get("pixel_values"), (torch.Tensor, np.ndarray)) else None


def _pixels(fn: Callable[[torch.Tensor], Any]) -> Mutate:
    def apply(sample: Sample, adapter: BackboneAdapter, rng: np.random.Generator) -> Sample | None:
        key = _pixels_of(sample)
        if key is None:
            return None
        value = fn(_tensor(sample[key]).float())
        return None if value is _SKIP else {**sample, key: value}

    return apply


def _sizes(value: Any) -> Mutate:
    def apply(sample: Sample, adapter: BackboneAdapter, rng: np.random.Generator) -> Sample | None:
        if "image_sizes" not in sample:
            return None
        return {**sample, "image_sizes": value(sample["image_sizes"]) if callable(value) else value}

    return apply


def _raw(fn: Callable[[Image.Image], Any]) -> Mutate:
    def apply(sample: Sample, adapter: BackboneAdapter, rng: np.random.Generator) -> Sample | None:
        if not isinstance(sample.get("image"), Image.Image):
            return None
        return {**sample, "image": fn(sample["image"])}

    return apply


def _drop(key: str) -> Mutate:
    def apply(sample: Sample, adapter: BackboneAdapter, rng: np.random.Generator) -> Sample | None:
        return None if key not in sample else {k: v for k, v in sample.items() if k != key}

    return apply


def _mask(fn: Callable[[torch.Tensor], torch.Tensor]) -> Mutate:
    """An ``attention_mask`` made from the sample's ``input_ids``."""

    def apply(sample: Sample, adapter: BackboneAdapter, rng: np.random.Generator) -> Sample | None:
        ids = sample.get("input_ids")
        return None if not isinstance(ids, torch.Tensor) else {**sample, "attention_mask": fn(ids)}

    return apply


def _swap_sizes(sizes: Any) -> Any:
    return [[int(s[1]), int(s[0])] for s in sizes]


def _other_raw_image(sample: Sample, adapter: BackboneAdapter, rng: np.random.Generator) -> Sample | None:
    if _pixels_of(sample) is None or "image_sizes" not in sample:
        return None
    h, w = (int(v) for v in sample["image_sizes"][0])
    return {
        **sample,
        "image": smooth_image(h, w, seed=int(rng.integers(100, 10_000))).transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    }


def _meta_contradicts(sample: Sample, adapter: BackboneAdapter, rng: np.random.Generator) -> Sample | None:
    if "image_sizes" not in sample:
        return None
    h, w = (int(v) for v in sample["image_sizes"][0])
    return {**sample, "meta_data": [{"original_shape": {"height": h * 2 + 1, "width": w}}]}


def _not_a_dict(sample: Sample, adapter: BackboneAdapter, rng: np.random.Generator) -> Any:
    return [sample]


def _grid(fn: Callable[[torch.Tensor], Any]) -> Mutate:
    return _on("image_grid_thw", lambda g, a, r: fn(_tensor(g).clone()))


def _transpose_grid(g: torch.Tensor) -> Any:
    if g.ndim != 2 or g.shape[-1] != 3 or bool((g[:, 1] == g[:, 2]).all()):
        return _SKIP
    return g[:, [0, 2, 1]]


def _half_rows(x: torch.Tensor) -> Any:
    if x.ndim >= 4:
        return torch.nn.functional.interpolate(x.reshape(-1, *x.shape[-3:]), scale_factor=0.5).reshape(
            *x.shape[:-2], x.shape[-2] // 2, x.shape[-1] // 2
        )
    return x[: max(1, x.shape[0] // 2 - 1)]


MUTATIONS: tuple[Mutation, ...] = (
    # ids
    Mutation("ids_as_strings", "refuse", _on("input_ids", lambda x, a, r: [str(v) for v in _tensor(x).tolist()])),
    Mutation("ids_none_with_image", "refuse", _on("input_ids", lambda x, a, r: None)),
    Mutation("ids_dict", "refuse", _on("input_ids", lambda x, a, r: {"ids": x})),
    Mutation("ids_ragged", "refuse", _on("input_ids", lambda x, a, r: [_tensor(x).tolist(), [1]])),
    Mutation("ids_bytes", "refuse", _on("input_ids", lambda x, a, r: bytes(_tensor(x).clamp(0, 255).tolist()))),
    Mutation("ids_huge_int", "refuse", _on("input_ids", lambda x, a, r: [*_tensor(x).tolist()[:-1], 2**70])),
    Mutation("ids_fractional", "refuse", _on("input_ids", lambda x, a, r: _tensor(x).double() + 0.5)),
    Mutation("ids_whole_floats", "refuse", _on("input_ids", lambda x, a, r: _tensor(x).float())),
    Mutation("ids_negative", "refuse", _on("input_ids", lambda x, a, r: _set_one(x, -5))),
    Mutation("ids_out_of_vocab", "refuse", _on("input_ids", lambda x, a, r: _set_one(x, _vocab(a) + 3))),
    Mutation("ids_batch_of_two", "refuse", _on("input_ids", lambda x, a, r: torch.stack([_tensor(x)] * 2))),
    Mutation("ids_empty", "refuse", _on("input_ids", lambda x, a, r: _tensor(x)[:0])),
    Mutation("ids_3d", "refuse", _on("input_ids", lambda x, a, r: _tensor(x)[None, None, None])),
    Mutation("ids_bool", "refuse", _on("input_ids", lambda x, a, r: _tensor(x) > 0)),
    Mutation("ids_as_list", "either", _on("input_ids", lambda x, a, r: _tensor(x).tolist())),
    Mutation("ids_numpy_int32", "either", _on("input_ids", lambda x, a, r: _tensor(x).numpy().astype(np.int32))),
    Mutation("ids_batch_of_one", "either", _on("input_ids", lambda x, a, r: _tensor(x)[None])),
    # labels
    Mutation("labels_out_of_vocab", "refuse", _on("labels", lambda x, a, r: _set_one(x, _vocab(a) + 1))),
    Mutation("labels_negative", "refuse", _on("labels", lambda x, a, r: _set_one(x, -7))),
    Mutation("labels_wrong_length", "refuse", _on("labels", lambda x, a, r: _tensor(x)[:-2])),
    Mutation("labels_fractional", "refuse", _on("labels", lambda x, a, r: _tensor(x).double() + 0.25)),
    Mutation("labels_all_ignored", "either", _on("labels", lambda x, a, r: torch.full_like(_tensor(x), -100))),
    # mask_ids
    Mutation("mask_ids_wrong_length", "refuse", _on("mask_ids", lambda x, a, r: _tensor(x)[:-1])),
    Mutation("mask_ids_fractional", "refuse", _on("mask_ids", lambda x, a, r: _tensor(x).double() + 0.5)),
    Mutation("mask_ids_strings", "refuse", _on("mask_ids", lambda x, a, r: [str(v) for v in _tensor(x).tolist()])),
    # attention_mask
    Mutation("attention_mask_twos", "refuse", _mask(lambda ids: torch.full_like(ids, 2))),
    Mutation("attention_mask_all_zero", "refuse", _mask(torch.zeros_like)),
    Mutation("attention_mask_wrong_length", "refuse", _mask(lambda ids: torch.ones(3, dtype=torch.long))),
    Mutation("attention_mask_half", "refuse", _mask(lambda ids: torch.full(ids.shape, 0.5))),
    Mutation("attention_mask_bool", "either", _mask(lambda ids: torch.ones_like(ids, dtype=torch.bool))),
    # image sizes
    Mutation("sizes_string", "refuse", _sizes("big")),
    Mutation("sizes_negative", "refuse", _sizes(lambda s: [[-int(s[0][0]), int(s[0][1])]])),
    Mutation("sizes_zero", "refuse", _sizes(lambda s: [[0, int(s[0][1])]])),
    Mutation("sizes_fractional", "refuse", _sizes(lambda s: [[int(s[0][0]) + 0.5, int(s[0][1])]])),
    Mutation("sizes_one_too_many", "refuse", _sizes(lambda s: [*s, [10, 10]])),
    Mutation("sizes_bool", "refuse", _sizes([[True, True]])),
    Mutation("sizes_none_entry", "refuse", _sizes([None])),
    Mutation("sizes_huge", "refuse", _sizes([[10**9, 10**9]])),
    Mutation("sizes_swapped", "refuse", _sizes(_swap_sizes)),
    Mutation("sizes_as_tensor", "either", _sizes(lambda s: torch.tensor(s))),
    Mutation("sizes_as_dicts", "either", _sizes(lambda s: [{"height": int(s[0][0]), "width": int(s[0][1])}])),
    # meta_data
    Mutation("meta_not_a_dict", "refuse", _on("meta_data", lambda x, a, r: ["big"])),
    Mutation("meta_garbage_shape", "refuse", _on("meta_data", lambda x, a, r: [{"original_shape": "big"}])),
    Mutation("meta_contradicts_sizes", "refuse", _meta_contradicts),
    # pixel values
    Mutation("pixels_none_with_image_tokens", "refuse", _drop("pixel_values")),
    Mutation("pixels_string", "refuse", _on("pixel_values", lambda x, a, r: "pixels")),
    Mutation("pixels_nan", "refuse", _pixels(lambda x: x.index_fill(0, torch.tensor([0]), float("nan")))),
    Mutation("pixels_inf", "refuse", _pixels(lambda x: x.index_fill(0, torch.tensor([0]), float("inf")))),
    Mutation("pixels_times_255", "refuse", _pixels(lambda x: x * 255)),
    Mutation("pixels_channels_last", "refuse", _pixels(lambda x: x.movedim(-3, -1) if x.ndim >= 3 else x.T)),
    Mutation("pixels_half_resolution", "refuse", _pixels(_half_rows)),
    Mutation("pixels_empty", "refuse", _pixels(lambda x: x[:0])),
    Mutation("pixels_twice", "refuse", _pixels(lambda x: torch.cat([x, x]))),
    Mutation(
        "pixels_as_patch_image",
        "refuse",
        _pixels(lambda x: x.reshape(x.shape[0], -1)[None, None].expand(1, 3, x.shape[0], -1)),
    ),
    Mutation("pixels_int", "refuse", _pixels(lambda x: (x * 10).round().long())),
    Mutation("pixels_wrapped", "either", _pixels(lambda x: x[None])),
    Mutation("pixels_half_precision", "either", _pixels(lambda x: x.half())),
    Mutation("raw_image_of_another_picture", "refuse", _other_raw_image),
    # grids (where the sample has one)
    Mutation("grid_transposed", "refuse", _grid(_transpose_grid)),
    Mutation("grid_wrong_product", "refuse", _grid(lambda g: g * torch.tensor([1, 2, 1]))),
    Mutation("grid_negative", "refuse", _grid(lambda g: -g)),
    Mutation("grid_junk", "refuse", _on("image_grid_thw", lambda x, a, r: "30x46")),
    Mutation("grid_fractional", "refuse", _grid(lambda g: g.double() + 0.5)),
    Mutation("grid_nested_list", "either", _grid(lambda g: g.tolist())),
    # raw images
    Mutation("raw_empty", "refuse", _raw(lambda im: np.zeros((0, 5, 3), np.uint8))),
    Mutation("raw_negative_floats", "refuse", _raw(lambda im: np.asarray(im, np.float32) / 255 - 0.5)),
    Mutation("raw_floats_above_one", "refuse", _raw(lambda im: np.asarray(im, np.float32))),
    Mutation("raw_nan", "refuse", _raw(lambda im: np.full((im.height, im.width, 3), np.nan, np.float32))),
    Mutation("raw_thin", "either", _raw(lambda im: im.resize((max(1, im.width * 40), 2)))),
    Mutation("raw_grey", "either", _raw(lambda im: im.convert("L"))),
    Mutation("raw_palette", "either", _raw(lambda im: im.convert("P"))),
    Mutation("raw_with_alpha", "either", _raw(lambda im: im.convert("RGBA"))),
    Mutation("raw_cmyk", "either", _raw(lambda im: im.convert("CMYK"))),
    Mutation("raw_16_bit", "either", _raw(lambda im: Image.fromarray(np.asarray(im.convert("L"), np.uint16) * 257))),
    Mutation(
        "raw_float_mode", "either", _raw(lambda im: Image.fromarray(np.asarray(im.convert("L"), np.float32) / 255))
    ),
    Mutation("raw_as_numpy", "either", _raw(lambda im: np.asarray(im))),
    Mutation("raw_as_chw_tensor", "either", _raw(lambda im: torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1))),
    # structure
    Mutation("drop_input_ids", "refuse", _drop("input_ids")),
    Mutation("not_a_dict", "refuse", _not_a_dict),
)


# --- the oracle --------------------------------------------------------------------------------
def _snapshot(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return ("tensor", value.detach().clone())
    if isinstance(value, np.ndarray):
        return ("array", value.copy())
    if isinstance(value, Image.Image):
        return ("image", value.mode, value.size, value.tobytes())
    if isinstance(value, Mapping):
        return {k: _snapshot(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_snapshot(v) for v in value]
    return copy.deepcopy(value)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, tuple) and a and a[0] == "tensor":
        return (
            isinstance(b, tuple)
            and b[0] == "tensor"
            and a[1].shape == b[1].shape
            and bool(torch.equal(a[1].nan_to_num(7.0), b[1].nan_to_num(7.0)))
        )
    if isinstance(a, tuple) and a and a[0] == "array":
        return isinstance(b, tuple) and b[0] == "array" and np.array_equal(a[1], b[1], equal_nan=a[1].dtype.kind == "f")
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def oracle(adapter: BackboneAdapter, model: Any, batch: VisionBatch) -> str | None:
    """``None`` if an accepted batch is consistent, else what is wrong with it."""
    vocab = _vocab(adapter)
    ids = batch.input_ids
    if ids.dtype != torch.long or int(ids.min()) < 0 or int(ids.max()) >= vocab:
        return f"input_ids outside [0, {vocab}) or not int64"
    labels = batch.inputs.get("labels")
    if labels is not None and bool((((labels < 0) & (labels != -100)) | (labels >= vocab)).any()):
        return "labels outside the vocabulary (other than -100)"
    mask = batch.inputs.get("attention_mask")
    if mask is not None and (bool(((mask != 0) & (mask != 1)).any()) or bool((mask.sum(-1) == 0).any())):
        return "attention_mask not binary, or empty"
    for b, (geometries, positions) in enumerate(batch.samples()):
        again = adapter.image_positions(ids[b], geometries, sample=b)
        if [p.tolist() for p in again] != [p.tolist() for p in positions]:
            return f"sample {b}: image-token positions do not match the geometry"
    inputs = {k: v for k, v in batch.inputs.items() if k != "labels"}
    try:
        with torch.no_grad():
            model(**inputs)
    except Exception as exc:  # the point: the stock forward must run on what was accepted
        return f"the stock forward fails: {type(exc).__name__}: {str(exc)[:120]}"
    return None


def try_sample(adapter: BackboneAdapter, model: Any, base: str, sample: Any, mutations: Sequence[Mutation]) -> Outcome:
    """Normalise one (mutated) sample and classify what happened."""
    names = tuple(m.name for m in mutations)
    before = _snapshot(sample)
    try:
        batch = adapter.normalize(sample)
    except VisionInputError as exc:
        return Outcome(base, names, "refused", type(exc).__name__)
    except Exception as exc:
        return Outcome(base, names, "crash", f"{type(exc).__name__}: {str(exc)[:160]}")
    if not _same(before, _snapshot(sample)):
        return Outcome(base, names, "silent", "normalize changed the caller's sample")
    if any(m.expect == "refuse" for m in mutations):
        return Outcome(base, names, "silent", ACCEPTED_WRONG)
    try:
        problem = oracle(adapter, model, batch)
    except VisionInputError as exc:
        problem = f"the accepted batch is inconsistent: {exc}"
    return Outcome(base, names, "silent", problem) if problem else Outcome(base, names, "accepted")


def apply_chain(
    sample: Sample, chain: Iterable[Mutation], adapter: BackboneAdapter, rng: np.random.Generator
) -> tuple[Any, list[Mutation]]:
    """Apply the applicable mutations of ``chain`` in order; returns the sample and those applied."""
    applied = []
    touched: set[str] = set()
    current: Any = sample
    for mutation in chain:
        if not isinstance(current, dict):
            break
        try:
            result = mutation.apply(current, adapter, rng)
        except Exception:  # a mutation that cannot act on what an earlier one left: not applicable
            result = None
        if result is None:
            continue
        changed = {k for k in current.keys() | (result.keys() if isinstance(result, dict) else set())}
        changed = {k for k in changed if not isinstance(result, dict) or current.get(k) is not result.get(k)}
        if changed & touched:
            continue  # a second mutation of the same field would overwrite (and so undo) the first
        touched |= changed
        current = result
        applied.append(mutation)
    return current, applied


def run_corpus(
    adapter: BackboneAdapter, model: Any, *, chains: int = 100, seed: int = 0, max_chain: int = 3
) -> CorpusReport:
    """Every single mutation on every base format, then ``chains`` random chains (fixed seed)."""
    rng = np.random.default_rng(seed)
    bases = base_samples(adapter, seed=seed)
    report = CorpusReport()
    for base, sample in bases.items():
        for mutation in MUTATIONS:
            mutated, applied = apply_chain(sample, [mutation], adapter, rng)
            if applied:
                report.outcomes.append(try_sample(adapter, model, base, mutated, applied))
    names = list(bases)
    while chains > 0:
        base = names[int(rng.integers(len(names)))]
        picks = rng.choice(len(MUTATIONS), size=int(rng.integers(2, max_chain + 1)), replace=False)
        mutated, applied = apply_chain(bases[base], [MUTATIONS[i] for i in picks], adapter, rng)
        if len(applied) >= 2:
            report.outcomes.append(try_sample(adapter, model, base, mutated, applied))
            chains -= 1
    return report


def check_chains(
    adapter: BackboneAdapter, model: Any, *, examples: int = 30, unobservable: Iterable[str] = (), max_chain: int = 3
) -> None:
    """Property-based chains: hypothesis draws a sample format, 2 to ``max_chain`` distinct mutations
    and a seed; every chain must be refused or accepted consistently. A failing chain is shrunk to
    the fewest mutations that still fail, and the assertion names the format and the mutations.
    Runs are derandomised (the same examples every run) and keep no example database."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    bases = base_samples(adapter)
    allowed = set(unobservable)

    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        base=st.sampled_from(sorted(bases)),
        chain=st.lists(st.sampled_from(MUTATIONS), min_size=2, max_size=max_chain, unique_by=lambda m: m.name),
        seed=st.integers(0, 2**16),
    )
    def holds(base: str, chain: list[Mutation], seed: int) -> None:
        mutated, applied = apply_chain(bases[base], chain, adapter, np.random.default_rng(seed))
        if not applied:
            return
        outcome = try_sample(adapter, model, base, mutated, applied)
        failed = CorpusReport([outcome]).failures_except(allowed)
        assert not failed, f"{outcome.kind}: {outcome.label}: {outcome.detail}"

    holds()
