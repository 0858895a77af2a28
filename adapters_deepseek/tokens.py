"""``input_ids`` and the per-token companions (``mask_ids``, ``labels``, ``attention_mask``).

DeepSeek-VL needs exactly ``num_image_tokens`` image-token ids per image, in one contiguous
run per image: the model scatters the features into those positions in order, checking only
the total. Research datasets hand over either the processor's expanded ids or the prompt's
ids with one placeholder per image. The second is repaired exactly (each placeholder becomes
the full run, and every companion sequence is expanded alongside so ``mask_ids`` stays aligned);
every other count is refused, with the per-image count in the message, because the stock
"tokens: 567, features: 36864" counts features times hidden size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from vlm_adapters import MissingInputError, TokenCountError, VisionInputError
from vlm_adapters.placeholders import expand_placeholders


def sequence(value: Any, key: str) -> torch.Tensor:
    """A 1-D int64 tensor from a 1-D or ``[1, S]`` tensor, array or list of ints."""
    if isinstance(value, (list, tuple)):
        try:
            value = np.asarray(value)
        except (ValueError, TypeError):
            value = None
    if isinstance(value, np.ndarray) and value.dtype.kind in "iu":
        value = torch.from_numpy(value.astype(np.int64))
    if (
        not isinstance(value, torch.Tensor)
        or value.dtype.is_floating_point
        or value.dtype.is_complex
        or value.dtype == torch.bool
    ):
        found = f"{type(value).__name__}" + (f" of dtype {value.dtype}" if hasattr(value, "dtype") else "")
        raise VisionInputError(
            f"{key} is not a sequence of integer ids",
            found=found,
            expected="a 1-D (or [1, seq]) integer tensor, array or list",
            fix=f"pass {key} as the tokenizer returned it (torch.long)",
        )
    if value.ndim == 2 and value.shape[0] == 1:
        value = value[0]
    if value.ndim != 1 or value.numel() == 0:
        raise VisionInputError(
            f"{key} has the wrong shape for one sample",
            found=tuple(value.shape),
            expected="[seq] or [1, seq] with seq > 0",
            fix="normalize() takes one sample; batch several with adapter.collate(samples)",
        )
    return value.to(torch.long)


def check_vocabulary(input_ids: torch.Tensor, vocab_size: int) -> None:
    """Ids outside the embedding table crash the forward with an IndexError; refuse them here."""
    lo, hi = int(input_ids.min()), int(input_ids.max())
    if lo < 0 or hi >= vocab_size:
        raise VisionInputError(
            "input_ids fall outside the vocabulary",
            found=f"ids in [{lo}, {hi}]",
            expected=f"ids in [0, {vocab_size - 1}]",
            fix="tokenize with this checkpoint's tokenizer; -100 belongs in labels, not input_ids",
        )


def expand_image_tokens(
    input_ids: torch.Tensor,
    companions: Mapping[str, torch.Tensor],
    *,
    image_token_id: int,
    tokens_per_image: int,
    num_images: int,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Check (and if needed expand) the image tokens of a 1-D ``input_ids`` and its companions.

    Adjacent images may share one run: the prompt format puts nothing between them. Companions
    follow :func:`vlm_adapters.placeholders.expand_placeholders`.
    """
    found = int((input_ids == image_token_id).sum())
    if num_images == 0 and found:
        raise MissingInputError(
            "input_ids hold image tokens but the sample has no image",
            found=f"{found} tokens of id {image_token_id}",
            expected="pixel_values (or a raw image) for them",
            fix="keep 'pixel_values' (or 'image') in the sample when the prompt has an image",
        )

    def mismatch(runs: list[int]) -> TokenCountError:
        return TokenCountError(
            "image tokens in input_ids do not match the images",
            found=f"{found} tokens of id {image_token_id} in runs of {runs} for {num_images} image(s)",
            expected=f"{tokens_per_image} tokens per image, one contiguous run each "
            f"({tokens_per_image * num_images} in all), or one placeholder per image",
            fix="tokenize the prompt with one image placeholder per image and let the adapter expand it "
            "(or use adapter.prepare); do not truncate sequences inside an image",
        )

    ids, out, _ = expand_placeholders(
        input_ids, companions, image_token_id, [tokens_per_image] * num_images, mismatch=mismatch, shared_runs=True
    )
    return ids, out
