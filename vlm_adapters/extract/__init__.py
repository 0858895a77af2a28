"""Dataset-scale extraction: a manifest through a frozen VLM into safetensors shards.

``vlm-adapters extract`` and :func:`extract` stream a manifest (or any iterable of sample dicts),
run the samples of one image over one shared prefix forward, and write phrase maps, phrase hidden
states and token ids to bounded shards with an index, resumable after a kill, one share per
process under ``torchrun`` or ``accelerate launch``. Read the result with
:class:`vlm_adapters.features.ExtractedFeatures`. Names are imported on first use, so the CLI can
register the command without importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_getattr

_EXPORTS: dict[str, str] = {
    "extract": ".job",
    "ExtractSummary": ".job",
    "Manifest": ".manifest",
    "open_manifest": ".manifest",
    "open_dataset_folder": ".manifest",
    "run_shared_prefix": ".prefix",
    "ManifestError": ".errors",
    "OutputFolderError": ".errors",
    "SampleError": ".errors",
}

__all__ = [
    "ExtractSummary",
    "Manifest",
    "ManifestError",
    "OutputFolderError",
    "SampleError",
    "extract",
    "open_dataset_folder",
    "open_manifest",
    "run_shared_prefix",
]

__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())


if TYPE_CHECKING:
    from .errors import ManifestError, OutputFolderError, SampleError
    from .job import ExtractSummary, extract
    from .manifest import Manifest, open_dataset_folder, open_manifest
    from .prefix import run_shared_prefix
