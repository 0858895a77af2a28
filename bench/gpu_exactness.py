"""Exactness on the GPU: captured attention vs eager output_attentions, for every built-in adapter.

fp32 on the tiny models (tolerance 1e-5, as on the CPU), plus a bf16 run reporting the largest
difference (probabilities are computed in fp32 in both, so only the bf16 inputs differ). Then
the shared image prefix (KV cache + batched continuation) vs one full forward per sample, fp32.
"""

from __future__ import annotations

import torch

from vlm_adapters import list_adapters
from vlm_adapters.extract import run_shared_prefix
from vlm_adapters.pipeline import FrozenLMM
from vlm_adapters.testing import smooth_image


def max_diff(name: str, dtype: torch.dtype) -> float:
    lmm = FrozenLMM.from_tiny(name, dtype=dtype, device="cuda")
    eager = lmm.adapter.load_model(seed=0, dtype=dtype, attn_implementation="eager").to("cuda")
    prompt = lmm.adapter.format_prompt("describe the image .", answer="a red circle")
    batch = lmm.prepare([smooth_image(427, 640, seed=1)], [prompt])
    out = lmm(batch)[0]
    with torch.no_grad():
        ref = eager(**batch.to("cuda", dtype).inputs, output_attentions=True)
    q, k = out.query_positions.cuda(), batch.image_token_positions[0][0].cuda()
    worst = 0.0
    for slot, layer in enumerate(out.layers):
        want = lmm.adapter.tokens_to_grid(ref.attentions[layer][0][:, q][:, :, k].float(), out.geometries[0])
        worst = max(worst, float((out.attention[0][slot] - want).abs().max()))
    return worst


def prefix_diff(name: str) -> float:
    """Largest difference of maps and hidden states, shared prefix vs full forward, over three texts."""
    lmm = FrozenLMM.from_tiny(name, device="cuda")
    image = smooth_image(427, 640, seed=2)
    answers = ["a red circle", "the blue square on the right", "two shapes"]
    samples = [lmm.prepare([image], [lmm.adapter.format_prompt("describe the image .", answer=a)]) for a in answers]
    worst = 0.0
    for sample, shared in zip(samples, run_shared_prefix(lmm, samples), strict=True):
        full = lmm(sample)[0]
        assert shared.hidden_states is not None and full.hidden_states is not None
        worst = max(worst, float((shared.image_attention[0] - full.image_attention[0]).abs().max()))
        worst = max(worst, float((shared.hidden_states - full.hidden_states).abs().max()))
    return worst


def main() -> None:
    names = [a.name for a in list_adapters() if a.status == "loaded"]
    for name in names:
        fp32 = max_diff(name, torch.float32)
        bf16 = max_diff(name, torch.bfloat16)
        status = "PASS" if fp32 <= 1e-5 else "FAIL"
        print(f"{name:20s} fp32 max|capture-eager| = {fp32:.2e} [{status}]   bf16 = {bf16:.2e}")
    for name in names:
        diff = prefix_diff(name)
        status = "PASS" if diff <= 1e-5 else "FAIL"
        print(f"{name:20s} fp32 max|shared prefix - full forward| = {diff:.2e} [{status}]")


if __name__ == "__main__":
    main()
