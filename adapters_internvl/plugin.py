"""Entry point of the built-in internvl plugin: registers its spec kind and adapter like any third-party plugin.

Both by import path (``SpecKindRef``, ``AdapterRef``), so ``vlm-adapters list`` reads this module only.
"""

from __future__ import annotations

from vlm_adapters import AdapterRef, SpecKindRef
from vlm_adapters.adapter_ref import ref_hooks
from vlm_adapters.remote_code import refuse_model_type

SPEC_KINDS = (SpecKindRef("internvl_tiles", "adapters_internvl.spec:InternVLTileSpec"),)

ADAPTERS = (
    AdapterRef(
        "internvl",
        "adapters_internvl.adapter:InternVLAdapter",
        ("internvl",),
        "internvl_tiles",
        "InternVL (hf format): 448 px tiles by aspect ratio + thumbnail, 256 tokens per tile, one run",
    ),
)
"""InternVL (transformers-format checkpoints)."""

register_adapters, register_spec_kinds = ref_hooks(ADAPTERS, SPEC_KINDS)

TRANSFORMERS_CHECKPOINTS = ("OpenGVLab/InternVL3-1B-hf", "OpenGVLab/InternVL3-2B-hf", "OpenGVLab/InternVL3-8B-hf")
"""Public InternVL checkpoints in the transformers format (the ``-hf`` repositories)."""

check_checkpoint = refuse_model_type(
    "internvl_chat", "the OpenGVLab/InternVL* repositories without -hf", ("internvl",), TRANSFORMERS_CHECKPOINTS
)
"""Refuse the original remote-code InternVL format by name."""
