"""Exact attention capture (vlm_adapters.capture) against eager ``output_attentions``.

Real tiny models with random weights (no hub, no mocks): Qwen2-VL (mrope, GQA), DeepSeek-VL
(SigLIP + Llama), and a plain Llama with heavy GQA. The reference is always the same model
switched to eager attention with ``output_attentions=True``.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from collections.abc import Mapping
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import (
    DeepseekVLConfig,
    DeepseekVLForConditionalGeneration,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
)

from vlm_adapters import capture as capture_module
from vlm_adapters.capture import (
    CAPTURE_IMPL_PREFIX,
    AttentionCapture,
    CaptureRequest,
    attention_rows,
    capture_attention,
)

ATOL = 1e-5

# ---------------------------------------------------------------------------------------------
# tiny models and inputs


QWEN_IMAGE, QWEN_VSTART, QWEN_VEND = 100, 102, 103


def _qwen2vl(dtype: torch.dtype = torch.float32, family: str = "qwen2_vl") -> PreTrainedModel:
    """A tiny Qwen2-VL (or Qwen2.5-VL: window attention in the vision tower, same text side)."""
    torch.manual_seed(0)
    text = {
        "vocab_size": 128,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 256,
        "rope_parameters": {"rope_type": "default", "mrope_section": [1, 1, 2], "rope_theta": 10000.0},
        "bos_token_id": None,
        "eos_token_id": None,
    }
    tokens: dict[str, Any] = {
        "image_token_id": QWEN_IMAGE,
        "video_token_id": 101,
        "vision_start_token_id": QWEN_VSTART,
        "vision_end_token_id": QWEN_VEND,
    }
    model: PreTrainedModel
    if family == "qwen2_vl":
        vision: dict[str, Any] = {"depth": 1, "embed_dim": 32, "hidden_size": 32, "num_heads": 2, "mlp_ratio": 2}
        model = Qwen2VLForConditionalGeneration(Qwen2VLConfig(text_config=text, vision_config=vision, **tokens))
    else:
        vision = {
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 32,
            "window_size": 56,
            "fullatt_block_indexes": [1],
        }
        model = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(text_config=text, vision_config=vision, **tokens))
    torch.nn.Module.to(model, dtype)  # (PreTrainedModel.to is a wrapper mypy misreads)
    return model.eval()


def _qwen2vl_inputs() -> dict[str, torch.Tensor]:
    """Batch of 2, the second left-padded; each has one 4x4-patch image (4 LLM tokens)."""
    img = [QWEN_VSTART] + [QWEN_IMAGE] * 4 + [QWEN_VEND]
    ids = torch.tensor([[1, 2, *img, 5, 6, 7, 8], [0, 0, 1, *img, 9, 10, 11]])
    mask = torch.tensor([[1] * 12, [0, 0] + [1] * 10])
    gen = torch.Generator().manual_seed(1)
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "pixel_values": torch.randn(32, 3 * 2 * 14 * 14, generator=gen),
        "image_grid_thw": torch.tensor([[1, 4, 4], [1, 4, 4]]),
        # 1 at image tokens: without it Qwen2-VL silently falls back to 1-D positions.
        "mm_token_type_ids": (ids == QWEN_IMAGE).int(),
    }


QWEN_REQUEST_Q = torch.tensor([[8, 9, 11, -1], [9, 10, 11, 2]])
QWEN_REQUEST_K = torch.tensor([[3, 4, 5, 6], [4, 5, 6, 7]])

DS_IMAGE = 60


def _deepseek_vl() -> DeepseekVLForConditionalGeneration:
    torch.manual_seed(0)
    cfg = DeepseekVLConfig(
        text_config={
            "model_type": "llama",
            "vocab_size": 64,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "bos_token_id": None,
            "eos_token_id": None,
        },
        vision_config={
            "model_type": "siglip_vision_model",
            "image_size": 28,
            "patch_size": 14,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
        },
        image_token_id=DS_IMAGE,
    )
    return DeepseekVLForConditionalGeneration(cfg).eval()


def _deepseek_inputs() -> dict[str, torch.Tensor]:
    """Batch of 2, the first right-padded; 4 image tokens (28 px / patch 14) each."""
    ids = torch.tensor([[1, 2, *[DS_IMAGE] * 4, 5, 6, 7, 0], [3, *[DS_IMAGE] * 4, 8, 9, 10, 11, 12]])
    return {
        "input_ids": ids,
        "attention_mask": torch.tensor([[1] * 9 + [0], [1] * 10]),
        "pixel_values": torch.randn(2, 3, 28, 28, generator=torch.Generator().manual_seed(2)),
    }


def _llama(dtype: torch.dtype = torch.float32, attn: str = "sdpa") -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=1,  # GQA with 4 query heads per key head
        bos_token_id=None,
        eos_token_id=None,
    )
    model = LlamaForCausalLM(cfg)
    torch.nn.Module.to(model, dtype)  # (PreTrainedModel.to is a wrapper mypy misreads)
    model.set_attn_implementation(attn)  # same as building with attn_implementation=attn
    return model.eval()


def _llama_inputs(padding_side: str) -> dict[str, torch.Tensor]:
    ids = torch.randint(1, 64, (3, 9), generator=torch.Generator().manual_seed(3))
    mask = torch.ones_like(ids)
    if padding_side == "left":
        mask[1, :3] = 0
        mask[2, :1] = 0
    else:
        mask[1, -3:] = 0
        mask[2, -1:] = 0
    return {"input_ids": ids, "attention_mask": mask}


# ---------------------------------------------------------------------------------------------
# references


def _sub(model: PreTrainedModel, name: str) -> Any:
    """A sub-config (typed Any: the config attribute is a union in the stubs)."""
    return getattr(model.config, name)


def _set_text_attn(model: PreTrainedModel, impl: str) -> None:
    if "text_config" in model.config.sub_configs:
        model.set_attn_implementation({"text_config": impl})
    else:
        model.set_attn_implementation(impl)


def _eager_attentions(model: PreTrainedModel, inputs: Mapping[str, Any]) -> tuple[torch.Tensor, ...]:
    original = model.get_decoder().config._attn_implementation
    _set_text_attn(model, "eager")
    try:
        with torch.no_grad():
            out = model(**inputs, output_attentions=True, use_cache=False)
    finally:
        _set_text_attn(model, original)
    assert len(out.attentions) == model.get_decoder().config.num_hidden_layers
    return tuple(out.attentions)


def _expected(
    attentions: tuple[torch.Tensor, ...], q: torch.Tensor, k: torch.Tensor, layers: list[int]
) -> torch.Tensor:
    """eager[layer][b, :, q[b, i], k[b, j]] as [batch, layers, heads, Q, K], 0 at -1 positions."""
    batch, heads = attentions[0].shape[:2]
    out = torch.zeros(batch, len(layers), heads, q.shape[1], k.shape[1])
    for b in range(batch):
        for li, layer in enumerate(layers):
            for i, qi in enumerate(q[b].tolist()):
                for j, kj in enumerate(k[b].tolist()):
                    if qi >= 0 and kj >= 0:
                        out[b, li, :, i, j] = attentions[layer][b, :, qi, kj].float()
    return out


def _plain(model: PreTrainedModel, inputs: Mapping[str, Any]) -> Any:
    with torch.no_grad():
        return model(**inputs, output_hidden_states=True, use_cache=False)


def _check_hidden(captured: torch.Tensor, stock: tuple[torch.Tensor, ...], q: torch.Tensor) -> None:
    assert captured.shape[1] == len(stock)
    for b in range(q.shape[0]):
        for i, qi in enumerate(q[b].tolist()):
            for layer, hidden in enumerate(stock):
                if qi < 0:
                    assert captured[b, layer, i].abs().max() == 0
                else:
                    torch.testing.assert_close(captured[b, layer, i], hidden[b, qi], rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# model tests


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl"])
def test_qwen_vl_padded_batch_matches_eager(family: str) -> None:
    model = _qwen2vl(family=family)
    inputs = _qwen2vl_inputs()
    request = CaptureRequest(query_positions=QWEN_REQUEST_Q, key_positions=QWEN_REQUEST_K)
    plain = _plain(model, inputs)

    with AttentionCapture(model, request) as cap:
        # Only the language model is switched; the vision tower keeps sdpa.
        assert _sub(model, "text_config")._attn_implementation == CAPTURE_IMPL_PREFIX + "sdpa"
        assert _sub(model, "vision_config")._attn_implementation == "sdpa"
        with torch.no_grad():
            out = model(**inputs, use_cache=False)
    assert _sub(model, "text_config")._attn_implementation == "sdpa"

    # The capture does not change the model output.
    torch.testing.assert_close(out.logits, plain.logits, rtol=0, atol=0)
    assert cap.attention.dtype == torch.float32
    assert cap.attention.shape == (2, 2, 4, 4, 4)
    expected = _expected(_eager_attentions(model, inputs), QWEN_REQUEST_Q, QWEN_REQUEST_K, [0, 1])
    torch.testing.assert_close(cap.attention, expected, rtol=0, atol=ATOL)
    assert cap.hidden_states is not None
    _check_hidden(cap.hidden_states, plain.hidden_states, QWEN_REQUEST_Q)


def test_deepseek_vl_right_padded_matches_eager() -> None:
    model = _deepseek_vl()
    inputs = _deepseek_inputs()
    q = torch.tensor([[6, 7, 8], [5, 6, 9]])
    k = torch.tensor([[2, 3, 4, 5], [1, 2, 3, 4]])
    plain = _plain(model, inputs)
    out, cap = capture_attention(model, inputs, CaptureRequest(q, k), logits_to_keep=0)

    torch.testing.assert_close(out.logits, plain.logits, rtol=0, atol=0)
    expected = _expected(_eager_attentions(model, inputs), q, k, [0, 1])
    torch.testing.assert_close(cap.attention, expected, rtol=0, atol=ATOL)
    assert cap.hidden_states is not None
    _check_hidden(cap.hidden_states, plain.hidden_states, q)


@pytest.mark.parametrize("padding_side", ["left", "right", "none"])
def test_llama_gqa_matches_eager(padding_side: str) -> None:
    model = _llama()
    inputs = _llama_inputs(padding_side)
    if padding_side == "none":  # no mask at all: sdpa's is_causal path (the mask arrives as None)
        inputs = {"input_ids": inputs["input_ids"]}
    q = torch.tensor([[8, 5, 0], [5, 4, -1], [7, -1, -1]]) if padding_side != "right" else None
    if q is None:
        q = torch.tensor([[8, 5, 0], [5, 4, -1], [7, 3, -1]])
    k = torch.tensor([[0, 1, 2, 3], [3, 4, -1, -1], [1, 2, 3, 4]])
    plain = _plain(model, inputs)
    out, cap = capture_attention(model, inputs, CaptureRequest(q, k), logits_to_keep=0)

    torch.testing.assert_close(out.logits, plain.logits, rtol=0, atol=0)
    expected = _expected(_eager_attentions(model, inputs), q, k, [0, 1])
    torch.testing.assert_close(cap.attention, expected, rtol=0, atol=ATOL)
    assert cap.hidden_states is not None
    _check_hidden(cap.hidden_states, plain.hidden_states, q)


def test_layer_subset_shared_positions_and_cheap_logits() -> None:
    model = _llama()
    inputs = _llama_inputs("left")
    q = torch.tensor([8, 6])  # 1-D: shared by the whole batch
    k = torch.tensor([3, 4, 5])
    out, cap = capture_attention(model, inputs, CaptureRequest(q, k, layers=[-1], hidden_states=False))

    assert out.logits.shape == (3, 1, 64)  # logits_to_keep=1 by default
    assert cap.layers == [1]
    assert cap.hidden_states is None
    expected = _expected(_eager_attentions(model, inputs), q.expand(3, -1), k.expand(3, -1), [1])
    torch.testing.assert_close(cap.attention, expected, rtol=0, atol=ATOL)


def test_bf16_model_gives_fp32_probabilities() -> None:
    model = _llama(torch.bfloat16)
    inputs = _llama_inputs("left")
    q = torch.tensor([[8, 5], [6, 4], [7, 3]])
    k = torch.tensor([[0, 1, 2], [3, 4, 5], [1, 2, 3]])
    plain = _plain(model, inputs)
    out, cap = capture_attention(model, inputs, CaptureRequest(q, k), logits_to_keep=0)

    torch.testing.assert_close(out.logits, plain.logits, rtol=0, atol=0)
    assert cap.attention.dtype == torch.float32
    assert cap.hidden_states is not None and cap.hidden_states.dtype == torch.bfloat16
    # Eager computes q @ k in bf16 and rounds the probabilities to bf16; ours is fp32 throughout.
    expected = _expected(_eager_attentions(model, inputs), q, k, [0, 1])
    torch.testing.assert_close(cap.attention, expected, rtol=0, atol=2e-2)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_rows_equal_an_fp32_softmax_of_the_same_values(dtype: torch.dtype) -> None:
    """On bf16/fp16 query and key, the probabilities are the fp32 softmax of exactly those values
    (upcast before q @ k): compared with an fp64 reference at fp32 tolerance, not the 2e-2 that a
    comparison with low-precision eager needs."""
    torch.manual_seed(0)
    query = (torch.randn(2, 4, 9, 16) * 3).to(dtype)
    key = (torch.randn(2, 2, 9, 16) * 3).to(dtype)
    q_pos = torch.tensor([[8, 5, 2], [7, 6, -1]])
    k_pos = torch.tensor([[0, 1, 2, 3], [2, 3, 4, -1]])
    got = attention_rows(query, key, None, q_pos, k_pos, scaling=0.3)
    logits = torch.einsum("bhqd,bhkd->bhqk", query.double(), key.double().repeat_interleave(2, dim=1)) * 0.3
    logits = logits.masked_fill(torch.ones(9, 9, dtype=torch.bool).triu(1), float("-inf"))
    probs = logits.softmax(-1)
    for b in range(2):
        for i, qi in enumerate(q_pos[b].tolist()):
            for j, kj in enumerate(k_pos[b].tolist()):
                want = 0.0 if qi < 0 or kj < 0 else probs[b, :, qi, kj]
                torch.testing.assert_close(
                    got[b, :, i, j].double(), torch.as_tensor(want).double().expand(4), rtol=0, atol=1e-6
                )


def test_eager_model_is_wrapped_with_its_own_eager_function() -> None:
    model = _llama(attn="eager")
    inputs = _llama_inputs("left")
    q = torch.tensor([[8, 5], [6, 4], [7, 3]])
    k = torch.tensor([[0, 1, 2], [3, 4, 5], [1, 2, 3]])
    with torch.no_grad():
        plain = model(**inputs, output_attentions=True, use_cache=False)
    out, cap = capture_attention(model, inputs, CaptureRequest(q, k), output_attentions=True, logits_to_keep=0)

    assert model.config._attn_implementation == "eager"
    torch.testing.assert_close(out.logits, plain.logits, rtol=0, atol=0)
    # The delegate's weights still flow out, so output_attentions keeps working under a capture.
    assert len(out.attentions) == 2
    expected = _expected(tuple(plain.attentions), q, k, [0, 1])
    torch.testing.assert_close(cap.attention, expected, rtol=0, atol=ATOL)


def _hook_counts(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_restores_implementation_when_forward_raises() -> None:
    model = _qwen2vl()
    inputs = _qwen2vl_inputs()
    bad = dict(inputs)
    bad["pixel_values"] = inputs["pixel_values"][:16]  # image features no longer match the tokens
    bad["image_grid_thw"] = inputs["image_grid_thw"][:1]
    before = _plain(model, inputs).logits
    hooks = _hook_counts(model)
    request = CaptureRequest(query_positions=QWEN_REQUEST_Q, key_positions=QWEN_REQUEST_K)

    with pytest.raises((ValueError, RuntimeError, IndexError)):
        capture_attention(model, bad, request)

    assert _sub(model, "text_config")._attn_implementation == "sdpa"
    assert _sub(model, "vision_config")._attn_implementation == "sdpa"
    assert _hook_counts(model) == hooks
    assert not any(m in capture_module._ACTIVE for m in model.modules())
    torch.testing.assert_close(_plain(model, inputs).logits, before, rtol=0, atol=0)


def test_bad_positions_raise_inside_forward_and_restore() -> None:
    model = _llama()
    inputs = _llama_inputs("right")
    with pytest.raises(IndexError, match="query_positions"):
        capture_attention(model, inputs, CaptureRequest(torch.tensor([9]), torch.tensor([0])))
    assert model.config._attn_implementation == "sdpa"


def test_captures_do_not_nest() -> None:
    model = _llama()
    request = CaptureRequest(torch.tensor([1]), torch.tensor([0]))
    with AttentionCapture(model, request), pytest.raises(RuntimeError, match="nest"):
        AttentionCapture(model, request).__enter__()
    assert model.config._attn_implementation == "sdpa"


# ---------------------------------------------------------------------------------------------
# the row computation against a dense reference, for every mask format transformers hands over


def _dense_reference(
    query: torch.Tensor,
    key: torch.Tensor,
    allowed: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
) -> torch.Tensor:
    groups = query.shape[1] // key.shape[1]
    key_rep = key.repeat_interleave(groups, dim=1)
    scores = query @ key_rep.transpose(-1, -2) * query.shape[-1] ** -0.5
    scores = scores.masked_fill(~allowed[:, None], torch.finfo(torch.float32).min)
    probs = scores.softmax(-1)
    out = torch.zeros(query.shape[0], query.shape[1], q.shape[1], k.shape[1])
    for b in range(query.shape[0]):
        for i, qi in enumerate(q[b].tolist()):
            for j, kj in enumerate(k[b].tolist()):
                if qi >= 0 and kj >= 0:
                    out[b, :, i, j] = probs[b, :, qi, kj]
    return out


@settings(max_examples=40, deadline=None)
@given(
    batch=st.integers(1, 3),
    kv_heads=st.integers(1, 2),
    groups=st.integers(1, 3),
    seq=st.integers(1, 7),
    mask_kind=st.sampled_from(["none", "bool4d", "float4d", "padding2d"]),
    data=st.data(),
)
def test_attention_rows_matches_dense_reference(
    batch: int, kv_heads: int, groups: int, seq: int, mask_kind: str, data: st.DataObject
) -> None:
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 2**16)))
    query = torch.randn(batch, kv_heads * groups, seq, 4, generator=gen)
    key = torch.randn(batch, kv_heads, seq, 4, generator=gen)
    pads = [data.draw(st.integers(0, seq - 1)) if mask_kind != "none" else 0 for _ in range(batch)]
    padding = torch.ones(batch, seq, dtype=torch.bool)
    for b, pad in enumerate(pads):
        padding[b, :pad] = False  # left padding
    causal = torch.ones(seq, seq, dtype=torch.bool).tril()
    allowed = causal[None] & padding[:, None, :]
    n_q, n_k = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    q = torch.tensor([[data.draw(st.integers(pads[b], seq - 1)) for _ in range(n_q)] for b in range(batch)])
    k = torch.tensor([[data.draw(st.integers(-1, seq - 1)) for _ in range(n_k)] for b in range(batch)])
    q[:, -1] = torch.where(torch.rand(batch, generator=gen) < 0.3, -1, q[:, -1])

    mask: torch.Tensor | None
    if mask_kind == "none":
        mask = None
    elif mask_kind == "bool4d":
        mask = allowed[:, None]
    elif mask_kind == "float4d":
        mask = torch.zeros(batch, 1, seq, seq).masked_fill(~allowed[:, None], torch.finfo(torch.float32).min)
    else:
        mask = padding.long()

    got = attention_rows(query, key, mask, q, k)
    torch.testing.assert_close(got, _dense_reference(query, key, allowed, q, k), rtol=0, atol=1e-6)
