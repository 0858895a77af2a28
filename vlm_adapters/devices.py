"""``--device`` and ``--dtype``: resolved and checked against this machine before a model loads."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import OptionError

if TYPE_CHECKING:
    import torch

DTYPES = ("auto", "float32", "bfloat16", "float16")


def resolve_device(name: str) -> torch.device:
    """``auto`` is the first CUDA device when there is one, else the CPU; others must exist here."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise OptionError(
            "--device is not a device name",
            found=repr(name),
            expected="auto, cpu, cuda, cuda:N or mps",
            fix="use --device auto to take a GPU when there is one",
        ) from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index is not None and device.index >= count):
            raise OptionError(
                f"--device {name} is not available on this machine",
                found=f"{count} CUDA device(s) (torch {torch.__version__}, CUDA build {torch.version.cuda})",
                expected=f"a CUDA device index below {count}" if count else "a CUDA GPU and a CUDA build of torch",
                fix="use --device cpu (or auto), or install a CUDA build of torch on a machine with a GPU",
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise OptionError(
            "--device mps is not available on this machine",
            found="torch.backends.mps.is_available() is False",
            expected="Apple silicon with an MPS build of torch",
            fix="use --device cpu (or auto)",
        )
    elif device.type not in ("cpu", "cuda", "mps"):
        raise OptionError(
            f"--device {name} is not supported",
            found=repr(device.type),
            expected="auto, cpu, cuda, cuda:N or mps",
            fix="use --device auto",
        )
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto``: bfloat16 on a GPU that has it (else float16), float32 on the CPU."""
    import torch

    if name not in DTYPES:
        raise OptionError(
            "--dtype is not a supported dtype", found=repr(name), expected=f"one of {list(DTYPES)}", fix="use auto"
        )
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    dtype: torch.dtype = getattr(torch, name)
    if dtype == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise OptionError(
            "--dtype bfloat16 is not supported by this GPU",
            found=torch.cuda.get_device_name(device),
            expected="a GPU with bfloat16 (compute capability 8.0 or newer)",
            fix="use --dtype float16 or auto",
        )
    return dtype
