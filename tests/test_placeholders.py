"""The core placeholder expansion both built-in plugins share, on real tensors."""

from __future__ import annotations

import pytest
import torch

from vlm_adapters import TokenCountError, VisionInputError
from vlm_adapters.placeholders import expand_placeholders, image_runs

IMG = 9


class Mismatch(VisionInputError):
    """The caller's own error, to see that it is the one raised."""


def refuse(lengths: list[int]) -> VisionInputError:
    return Mismatch("runs", found=lengths, expected="the counts", fix="none")


def expand(ids: list[int], counts: list[int], shared_runs: bool = False, **companions: list[int]):
    tensors = {k: torch.tensor(v) for k, v in companions.items()}
    return expand_placeholders(torch.tensor(ids), tensors, IMG, counts, mismatch=refuse, shared_runs=shared_runs)


def test_image_runs() -> None:
    assert image_runs(torch.tensor([IMG, IMG, 1, IMG, 2, IMG, IMG, IMG]), IMG) == [(0, 2), (3, 1), (5, 3)]
    assert image_runs(torch.tensor([1, 2]), IMG) == []


def test_expanded_ids_are_kept() -> None:
    ids, out, expanded = expand([1, IMG, IMG, IMG, 2, IMG, IMG, 3], [3, 2], labels=[1, 0, 0, 0, 2, 0, 0, 3])
    assert not expanded
    assert ids.tolist() == [1, IMG, IMG, IMG, 2, IMG, IMG, 3]
    assert out["labels"].tolist() == [1, 0, 0, 0, 2, 0, 0, 3]


def test_one_placeholder_per_image_is_expanded_with_its_companions() -> None:
    ids, out, expanded = expand([1, IMG, 2, IMG, 3], [3, 2], mask_ids=[-1, 7, 0, 8, 1])
    assert expanded
    assert ids.tolist() == [1, IMG, IMG, IMG, 2, IMG, IMG, 3]
    assert out["mask_ids"].tolist() == [-1, 7, 7, 7, 0, 8, 8, 1]  # the placeholder's own value


def test_companion_of_the_expanded_length_is_kept() -> None:
    _, out, _ = expand([1, IMG, 2], [3], labels=[4, 5, 5, 5, 6])
    assert out["labels"].tolist() == [4, 5, 5, 5, 6]


@pytest.mark.parametrize("ids", [[1, IMG, 2], [1, IMG, IMG, IMG, 2]])
def test_companion_of_another_length_is_not_aligned(ids: list[int]) -> None:
    with pytest.raises(TokenCountError, match="mask_ids is not aligned with input_ids") as info:
        expand(ids, [3], mask_ids=[0, 0])
    assert info.value.found == "2 entries" and "one per token" in info.value.expected


@pytest.mark.parametrize(
    ("ids", "counts", "lengths"),
    [
        ([1, IMG, IMG, 2], [3], [2]),  # a truncated run
        ([IMG, 1, IMG, IMG, IMG], [3], [1, 3]),  # one run too many
        ([1, IMG, IMG, IMG, IMG, IMG], [3, 2], [5]),  # two images in one run, not allowed here
        ([1, 2], [3], []),  # no image tokens
        ([1, IMG], [], [1]),  # image tokens without images
    ],
)
def test_anything_else_raises_the_callers_error(ids: list[int], counts: list[int], lengths: list[int]) -> None:
    with pytest.raises(Mismatch) as info:
        expand(ids, counts)
    assert info.value.found == lengths


def test_shared_runs_let_adjacent_images_share_a_run() -> None:
    ids, _, expanded = expand([1, IMG, IMG, IMG, IMG, IMG], [3, 2], shared_runs=True)
    assert not expanded and ids.numel() == 6
    ids, out, expanded = expand([1, IMG, IMG, 2], [3, 2], shared_runs=True, mask_ids=[0, 4, 5, 0])
    assert expanded and ids.tolist() == [1, IMG, IMG, IMG, IMG, IMG, 2]
    assert out["mask_ids"].tolist() == [0, 4, 4, 4, 5, 5, 0]
    with pytest.raises(Mismatch):  # a run that ends inside an image
        expand([1, IMG, 2, IMG, IMG, IMG, IMG], [2, 3], shared_runs=True)


def test_no_images_and_no_image_tokens_is_unchanged() -> None:
    ids, out, expanded = expand([1, 2, 3], [], attention_mask=[1, 1, 0])
    assert not expanded and ids.tolist() == [1, 2, 3] and out["attention_mask"].tolist() == [1, 1, 0]
