"""What Qwen-VL adds to the core's prompt fitting: still images only, and token counts explained.

The core keeps the processor's expanded image tokens or expands one placeholder per image (and
every per-token field alongside). Qwen prompts may also carry video tokens, which ``normalize``
does not take, and wrap each image's run in ``vision_start`` / ``vision_end``; a count that is
off by ``merge_size**2`` (patches counted instead of tokens) is named as such.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from vlm_adapters import DynamicSpec, TokenCountError, VisionInputError
from vlm_adapters.placeholders import image_runs

logger = logging.getLogger("adapters_qwen")


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


def diagnose(lengths: list[int], counts: Sequence[int], spec: DynamicSpec, name: str) -> TokenCountError:
    """Why runs of ``lengths`` image tokens do not fit images of ``counts`` tokens."""
    m2 = spec.merge_size**2
    fix = "expand each placeholder with the stock processor (or pass input_ids with one placeholder per image)"
    if not lengths:
        return TokenCountError(
            f"{name} has no image tokens",
            found=f"no token of id {spec.image_token_id} ({spec.image_token!r})",
            expected=f"{len(counts)} image(s) of {list(counts)} tokens",
            fix="tokenize the prompt with this checkpoint's tokenizer and its chat template (adapter.format_prompt)",
        )
    if len(lengths) != len(counts):
        return TokenCountError(
            f"{name} has {len(lengths)} runs of image tokens for {len(counts)} image(s)",
            found=f"runs of {lengths} tokens",
            expected=f"{list(counts)}, each run wrapped in vision_start/vision_end",
            fix=fix,
        )
    if all(n == c * m2 for n, c in zip(lengths, counts, strict=True)):
        return TokenCountError(
            f"{name} counts patches, not tokens (off by merge_size**2 = {m2})",
            found=lengths,
            expected=list(counts),
            fix="one image token per merged window: t*h*w / merge_size**2",
        )
    return TokenCountError(
        f"{name} image-token counts do not match the images' grids",
        found=lengths,
        expected=f"{list(counts)} (t*h*w / {m2} per image), or one placeholder per image",
        fix=fix,
    )
