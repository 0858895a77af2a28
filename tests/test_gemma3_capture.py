"""Attention capture on Gemma 3 equals eager ``output_attentions``, where Gemma 3 is unusual.

* Image tokens attend to each other bidirectionally (the model builds its mask from
  ``token_type_ids``: causal OR same-image block), so the mask is not causal.
* The softmax scale is ``query_pre_attn_scalar ** -0.5``, not ``head_dim ** -0.5``.
* Sliding layers AND a short window onto that mask.
* Pan-and-scan puts each crop in its own block of image tokens, with text between.

The reference is the same random-weight model under eager attention, on stock-processor inputs.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from transformers import Gemma3ForConditionalGeneration

from adapters_gemma3 import tiny
from vlm_adapters.capture import CaptureRequest, capture_attention
from vlm_adapters.testing.images import smooth_image

ATOL = 1e-5


def _model(config: Any, attn: str | None = None) -> Gemma3ForConditionalGeneration:
    torch.manual_seed(0)
    kwargs = {} if attn is None else {"attn_implementation": attn}
    model = Gemma3ForConditionalGeneration._from_config(copy.deepcopy(config), **kwargs).eval()
    tiny.randomise_image_projection(model, seed=0)
    return model


def _inputs(config: Any) -> dict[str, torch.Tensor]:
    """Two samples, left-padded: a wide image (base + 3 crops) and a square one (no crops)."""
    processor = tiny.tiny_processor(config, tiny.PAN_AND_SCAN_ON)
    processor.tokenizer.padding_side = "left"
    texts = []
    for text in ("describe the red cat", "where is the dog"):
        messages = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]},
            {"role": "assistant", "content": [{"type": "text", "text": "a cat on a chair"}]},
        ]
        texts.append(processor.apply_chat_template(messages, tokenize=False))
    images = [[smooth_image(300, 1000, seed=1)], [smooth_image(400, 420, seed=2)]]
    out = processor(images=images, text=texts, return_tensors="pt", padding=True)
    return {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}


@pytest.fixture(scope="module")
def config() -> Any:
    return tiny.tiny_config()


@pytest.fixture(scope="module")
def inputs(config: Any) -> dict[str, torch.Tensor]:
    return _inputs(config)


def _request(config: Any, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Queries: text rows and image rows (which see later image tokens); keys: every image token."""
    ids = inputs["input_ids"]
    queries, keys = [], []
    for row in ids:
        image = (row == config.image_token_id).nonzero().flatten()
        text = ((row != config.image_token_id) & (row != config.text_config.pad_token_id)).nonzero().flatten()
        queries.append(torch.cat([text[-6:], image[:: max(1, image.numel() // 5)]]))
        keys.append(image)
    width_q = max(q.numel() for q in queries)
    width_k = max(k.numel() for k in keys)
    q = torch.full((len(queries), width_q), -1, dtype=torch.long)
    k = torch.full((len(keys), width_k), -1, dtype=torch.long)
    for b, (qq, kk) in enumerate(zip(queries, keys, strict=True)):
        q[b, : qq.numel()] = qq
        k[b, : kk.numel()] = kk
    return q, k


def test_the_tiny_model_has_the_traits_under_test(config: Any, inputs: dict[str, torch.Tensor]) -> None:
    text = config.text_config
    assert text.query_pre_attn_scalar != text.head_dim  # scale differs from sdpa's default
    assert set(text.layer_types) == {"sliding_attention", "full_attention"}
    image_tokens = (inputs["input_ids"] == config.image_token_id).sum(1)
    assert int(image_tokens.max()) > text.sliding_window  # one image is wider than the window
    assert torch.equal(inputs["token_type_ids"].bool(), inputs["input_ids"] == config.image_token_id)
    model = _model(config)
    with torch.no_grad():  # the image reaches the language model (the stock init would embed it as zeros)
        darker = {**inputs, "pixel_values": inputs["pixel_values"] * 0.5}
        assert float((model(**inputs).logits - model(**darker).logits).abs().max()) > 1e-3


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_capture_equals_eager_on_every_row(config: Any, inputs: dict[str, torch.Tensor], attn: str) -> None:
    q, k = _request(config, inputs)
    _, cap = capture_attention(_model(config, attn), inputs, CaptureRequest(query_positions=q, key_positions=k))
    with torch.no_grad():
        ref = _model(config, "eager")(**inputs, output_attentions=True)
    for b in range(q.shape[0]):
        qv, kv = q[b][q[b] >= 0], k[b][k[b] >= 0]
        for layer, full in enumerate(ref.attentions):
            want = full[b][:, qv][:, :, kv].float()
            got = cap.attention[b, layer][:, : qv.numel(), : kv.numel()]
            torch.testing.assert_close(got, want, rtol=0, atol=ATOL)


def test_image_rows_see_later_image_tokens(config: Any, inputs: dict[str, torch.Tensor]) -> None:
    """The first token of an image attends to the image's last token: the mask is not causal,
    and the capture reproduces it (a causal recomputation would give exactly 0 there)."""
    firsts, lasts = [], []
    for row in inputs["input_ids"]:
        image = (row == config.image_token_id).nonzero().flatten()
        firsts.append(image[:1])
        last = int(config.mm_tokens_per_image) - 1
        lasts.append(image[last : last + 1])  # the last token of the sample's first image
    request = CaptureRequest(query_positions=torch.stack(firsts), key_positions=torch.stack(lasts))
    _, cap = capture_attention(_model(config), inputs, request)
    global_layer = config.text_config.layer_types.index("full_attention")
    assert float(cap.attention[:, global_layer].min()) > 0


def test_softcapping_setting_changes_nothing_for_gemma3(config: Any, inputs: dict[str, torch.Tensor]) -> None:
    """Gemma 3 keeps ``attn_logit_softcapping`` in its config but its attention never applies it
    (released checkpoints set it to None); a capture with it set still equals eager."""
    capped = copy.deepcopy(config)
    capped.text_config.attn_logit_softcapping = 5.0
    q, k = _request(config, inputs)
    _, cap = capture_attention(_model(capped), inputs, CaptureRequest(query_positions=q, key_positions=k))
    with torch.no_grad():
        ref = _model(capped, "eager")(**inputs, output_attentions=True)
    qv, kv = q[0][q[0] >= 0], k[0][k[0] >= 0]
    for layer, full in enumerate(ref.attentions):
        got = cap.attention[0, layer][:, : qv.numel()]
        torch.testing.assert_close(got, full[0][:, qv][:, :, kv], rtol=0, atol=ATOL)


def test_default_queries_are_the_prompt_not_the_crop_sentence() -> None:
    """With pan-and-scan the processor writes a sentence between an image's views; the default
    queries skip it (it is no word of the prompt), so a shared prefix can end at the image."""
    from adapters_gemma3 import Gemma3Adapter
    from adapters_gemma3.adapter import PAN_AND_SCAN_VARIANT
    from vlm_adapters.pipeline import FrozenLMM

    adapter = Gemma3Adapter.from_tiny(PAN_AND_SCAN_VARIANT)
    prompt = adapter.format_prompt("describe the red cat", answer="a cat on a chair")
    batch = adapter.prepare([smooth_image(300, 1000, seed=1)], [prompt])
    span = batch.image_token_positions[0][0]
    ids = batch.input_ids[0]
    inside = ids[int(span[0]) : int(span[-1]) + 1]
    sentence = adapter.processor.tokenizer(" and here are some crops to help you see better", add_special_tokens=False)
    assert int((inside != adapter.spec.image_token_id).sum()) > len(sentence["input_ids"])  # text between the views
    queries = FrozenLMM(adapter.load_model(seed=0), adapter).default_queries(batch, 0)
    assert torch.equal(queries, torch.arange(int(span[-1]) + 1, ids.numel()))
