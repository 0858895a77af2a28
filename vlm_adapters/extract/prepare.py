"""From a manifest row to a one-sample batch with ``mask_ids`` (the phrases' tokens), or a typed refusal.

Everything a bad row can get wrong shows up here, before any forward: a missing field, an image
that does not exist or decode, a phrase that is not in the text, a research-format sample that
``normalize`` refuses. Each becomes a :class:`~vlm_adapters.errors.VisionInputError` that the
extraction records against the sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError

from ..adapter import BackboneAdapter
from ..batch import VisionBatch
from ..errors import VisionInputError, VlmAdaptersError
from .errors import SampleError
from .manifest import Row
from .phrases import object_ids, text_tokens

RESEARCH_KEYS = ("input_ids", "input_ids_with_vision")
"""A row with one of these is a research-format sample for ``adapter.normalize``."""
ROW_ONLY_KEYS = ("id", "image_id")
"""Manifest fields that are not sample fields for ``normalize``."""


@dataclass
class Prepared:
    """A row ready for the forward: one-sample batch (with ``mask_ids``), and the query positions
    (the phrase tokens), plus what the index records about it."""

    row: Row
    batch: VisionBatch
    queries: torch.Tensor
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def num_objects(self) -> int:
        assert self.batch.mask_ids is not None
        return int(self.batch.mask_ids.max()) + 1


class RowPreparer:
    """Prepares rows for one adapter; keeps the last decoded image (rows of one image come together)."""

    def __init__(self, adapter: BackboneAdapter, prompt: str, base_dir: Path | None = None) -> None:
        self.adapter = adapter
        self.prompt = prompt
        self.base_dir = base_dir
        self._last: tuple[Path, Image.Image] | None = None

    def __call__(self, row: Row) -> Prepared:
        """The prepared sample, or a :class:`VisionInputError` saying why the row is refused."""
        if row.error is not None:
            raise row.error
        try:
            if any(key in row.data for key in RESEARCH_KEYS):
                return self._research(row)
            return self._manifest(row)
        except VlmAdaptersError:
            raise
        except (ValueError, TypeError, KeyError, IndexError, RuntimeError) as exc:
            # The stock processor refuses some inputs with plain errors (e.g. extreme aspect ratios).
            raise SampleError(
                "the stock processor refused the sample",
                found=f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}",
                expected="a sample the backbone's processor accepts",
                fix="check the image and text of this sample",
            ) from exc

    def _research(self, row: Row) -> Prepared:
        sample = {k: v for k, v in row.data.items() if k not in ROW_ONLY_KEYS}
        batch = self.adapter.normalize(sample)
        if batch.mask_ids is None or int(batch.mask_ids.max()) < 0:
            raise SampleError(
                "research-format sample without objects",
                found="no mask_ids" if batch.mask_ids is None else "mask_ids are all -1",
                expected="mask_ids with object ids 0..K-1 on the phrase tokens",
                fix="add mask_ids to the sample (one id per token, -1 elsewhere)",
            )
        return Prepared(row, batch, _queries(batch), {"id": row.sample_id})

    def _manifest(self, row: Row) -> Prepared:
        data = row.data
        text = data.get("text")
        if not isinstance(text, str) or not text.strip():
            raise SampleError(
                "sample has no text",
                found=f"text={text!r}"[:80],
                expected="a non-empty string (the caption or expression to ground)",
                fix="fill the text field of this row",
            )
        prompt = data.get("prompt") or self.prompt
        if not isinstance(prompt, str):
            raise SampleError(
                "prompt is not a string", found=repr(prompt)[:80], expected="a string", fix="fix the prompt field"
            )
        image = self._image(data.get("image"))
        full = self.adapter.format_prompt(prompt, num_images=1, answer=text)
        batch = self.adapter.prepare([image], [full])
        positions, spans = text_tokens(self.adapter.processor.tokenizer, full, batch.input_ids[0], text)
        ids = object_ids(data.get("phrases"), text, spans)
        mask_ids = torch.full_like(batch.input_ids, -1)
        mask_ids[0, positions] = torch.tensor(ids, dtype=mask_ids.dtype)
        batch.mask_ids = mask_ids
        image_field = data.get("image")
        record = {
            "id": row.sample_id,
            "image": image_field if isinstance(image_field, str) else None,
            "text": text,
            "phrases": _jsonable(data.get("phrases")),
        }
        return Prepared(row, batch, _queries(batch), record)

    def _image(self, value: Any) -> Any:
        if not isinstance(value, (str, Path)):
            if value is None:
                raise SampleError(
                    "sample has no image",
                    found="image=None",
                    expected="an image path or a decoded image",
                    fix="fill the image field of this row",
                )
            return value.convert("RGB") if isinstance(value, Image.Image) else value
        path = Path(value)
        if not path.is_absolute() and self.base_dir is not None:
            path = self.base_dir / path
        if self._last is not None and self._last[0] == path:
            return self._last[1]
        if not path.is_file():
            raise SampleError(
                "image file not found",
                found=str(path),
                expected="an existing image file",
                fix="fix the path (relative paths are read from the manifest's folder)",
            )
        try:
            with Image.open(path) as opened:
                image = opened.convert("RGB")
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise SampleError(
                "image file does not decode",
                found=f"{path}: {type(exc).__name__}: {exc}"[:200],
                expected="an image file PIL can read (PNG, JPEG, WebP, ...), not truncated",
                fix="re-export the image, or leave the sample out",
            ) from None
        self._last = (path, image)
        return image


def _queries(batch: VisionBatch) -> torch.Tensor:
    assert batch.mask_ids is not None
    return (batch.mask_ids[0] >= 0).nonzero().flatten()


def _jsonable(value: Any) -> Any:
    """Phrases as the index can store them (lists of strings, spans or ints), else their repr."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return repr(value)[:200]


def error_record(exc: VisionInputError | VlmAdaptersError) -> dict[str, Any]:
    """The index entry of a refused sample: the error's type, and what was found, expected and the fix."""
    entry: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    for key in ("problem", "found", "expected", "fix"):
        if hasattr(exc, key):
            entry[key] = _jsonable(getattr(exc, key))
    return entry
