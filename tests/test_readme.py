"""The README's research-code example runs as written (on the tiny default it names)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def test_research_code_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"## In research code\n\n```python\n(.*?)```", readme, re.S)
    assert code is not None, "README has no research-code example"
    monkeypatch.chdir(ROOT)
    scope: dict[str, object] = {}
    exec(compile(code.group(1), "README.md", "exec"), scope)
    batch, out, masks = scope["batch"], scope["out"], scope["masks"]
    mask_ids = batch.mask_ids[0]  # type: ignore[attr-defined]
    assert set(mask_ids.unique().tolist()) == {-1, 0, 1}
    assert isinstance(masks, torch.Tensor) and tuple(masks.shape) == (2, 427, 640)
    assert out.attention[0].shape[-2:] == out.geometries[0].token_grid  # type: ignore[attr-defined]
