"""Exactness on the GPU: captured attention vs eager output_attentions, for every built-in adapter.

fp32 on the tiny models (tolerance 1e-5, as on the CPU), plus a bf16 run reporting the largest
difference (probabilities are computed in fp32 in both, so only the bf16 inputs differ).
"""

from __future__ import annotations

import torch

from vlm_adapters import list_adapters
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


def main() -> None:
    names = [a.name for a in list_adapters() if a.status == "loaded"]
    for name in names:
        fp32 = max_diff(name, torch.float32)
        bf16 = max_diff(name, torch.bfloat16)
        status = "PASS" if fp32 <= 1e-5 else "FAIL"
        print(f"{name:20s} fp32 max|capture-eager| = {fp32:.2e} [{status}]   bf16 = {bf16:.2e}")


if __name__ == "__main__":
    main()
