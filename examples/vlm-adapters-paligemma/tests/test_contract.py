"""The vlm-adapters contract for PaliGemma, plus what is specific to it: the released sizes and
the prefix-LM token types.

Run against the *installed* distribution: the adapter is found through its entry point.
"""

from __future__ import annotations

import pytest
import torch
from transformers import PaliGemmaConfig

from vlm_adapters import MissingInputError, SpecError, get_adapter, list_adapters
from vlm_adapters.testing import AdapterContract, smooth_image, solid_image


class TestPaliGemmaContract(AdapterContract):
    adapter_name = "paligemma"

    unobservable_mistakes = {  # noqa: RUF012
        "sizes_swapped": "every image is stretched to the square input: no pixel shows its aspect ratio, so a "
        "(width, height) size is taken as given"
    }

    def processor_framing(self, adapter) -> int:  # type: ignore[no-untyped-def]
        """PaliGemmaProcessor writes ``<image>...<bos>prompt\n``: the geometry counts the BOS after the
        image (its extra token); the newline that ends every prompt is the processor's framing."""
        return len(adapter.processor.tokenizer("\n", add_special_tokens=False)["input_ids"])


@pytest.fixture(scope="module")
def adapter():
    return get_adapter("paligemma").from_tiny()


def test_found_through_its_entry_point() -> None:
    (row,) = [a for a in list_adapters() if a.name == "paligemma"]
    assert (row.distribution, row.version, row.status) == ("vlm-adapters-paligemma", "0.1.0", "loaded")
    assert (row.plugin, row.model_types, row.spec_kind) == ("paligemma", ("paligemma",), "paligemma")


@pytest.mark.parametrize(("side", "tokens"), [(224, 256), (448, 1024), (896, 4096)])
def test_spec_of_the_released_sizes(adapter, side: int, tokens: int) -> None:
    """The released checkpoints' SigLIP/14 at 224, 448 and 896 px, with their processors."""
    cls = type(adapter)
    processor = cls.tiny_processor_for(side, 14)
    config = PaliGemmaConfig(
        image_token_index=processor.image_token_id, vision_config={"image_size": side, "patch_size": 14}
    )
    spec = cls(config, processor).spec
    assert spec.image_size == (side, side) and spec.num_image_tokens == tokens
    out = processor(images=[solid_image(300, 500)], text=["<image>caption en"], return_tensors="pt")
    assert int((out["input_ids"] == spec.image_token_id).sum()) == tokens
    assert tuple(out["pixel_values"].shape[-2:]) == (side, side)
    geometry = spec.geometry((300, 500))
    assert geometry.padding.is_zero and geometry.input_size == (side, side)

    other = cls.tiny_processor_for(224 if side != 224 else 448, 14)
    with pytest.raises(SpecError, match="vision tower takes"):
        _ = cls(config, other).spec


def test_suffix_samples_keep_their_token_types(adapter) -> None:
    """A sample built with the processor's ``suffix`` (the trained format: the answer attends causally)
    keeps its ``token_type_ids`` through ``normalize``, or gets them back from ``labels``; logits equal the
    stock forward on the processor's output, and differ from a causal mask over everything."""
    image = smooth_image(120, 200, seed=1)
    stock = adapter.processor(images=[image], text=["<image>find the cat"], suffix=["a cat"], return_tensors="pt")
    sample = {
        "input_ids": stock["input_ids"][0],
        "pixel_values": stock["pixel_values"],
        "token_type_ids": stock["token_type_ids"][0],
        "image_sizes": [(120, 200)],
    }
    batch = adapter.normalize(sample)
    assert torch.equal(batch.inputs["token_type_ids"], stock["token_type_ids"])
    assert int(batch.inputs["token_type_ids"].sum()) == 3  # "a cat" + <eos>
    model = adapter.load_model(seed=0)
    with torch.no_grad():
        ours = model(**batch.inputs).logits
        theirs = model(**{k: v for k, v in stock.items() if k != "labels"}).logits
        causal = model(**{k: v for k, v in batch.inputs.items() if k != "token_type_ids"}).logits
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    assert (ours - causal).abs().max() > 1e-4, "token types change the attention (prefix LM)"

    without = {k: v for k, v in sample.items() if k != "token_type_ids"}
    again = adapter.normalize({**without, "labels": stock["labels"][0]})
    assert torch.equal(again.inputs["token_type_ids"], stock["token_type_ids"])
    with pytest.raises(MissingInputError, match="token_type_ids"):
        adapter.normalize(without)


def test_bad_input_corpus(adapter) -> None:
    """The kit's corpus: every mutation of every research format is refused with a VisionInputError
    or accepted as a batch the stock forward runs on.

    Except one the pixels cannot show: a stretch to a square has no padding, so a (width, height)
    swap of the declared size leaves the same pixels, and nothing in the sample tells the two apart.
    """
    from vlm_adapters.testing.corpus import run_corpus

    report = run_corpus(adapter, adapter.load_model(seed=0), chains=100)
    undecidable = [o for o in report.failures if o.mutations == ("sizes_swapped",) and o.base != "raw"]
    assert [o for o in report.failures if o not in undecidable] == [], report.describe()
    assert report.counts["refused"] > 200
