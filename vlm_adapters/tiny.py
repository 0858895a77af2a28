"""Offline tiny factories: tokenizers (and through adapters, processors and models) with no hub.

Tests and the default CLI run build everything here: a word-level tokenizer from the
``tokenizers`` library wrapped in ``PreTrainedTokenizerFast``, the stock image processor, and a
random-weight model from a few-layer config. ``save_pretrained`` / ``from_pretrained`` on a
local folder round-trips all of them, so the real-checkpoint path is the same code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerFast
from transformers.processing_utils import ProcessorMixin

from .adapter import BackboneAdapter
from .errors import NoTinyFactoryError


@runtime_checkable
class TinyFactory(Protocol):
    """Optional adapter protocol: offline tiny fixtures for tests, demos and the CLI default.

    An adapter for a real checkpoint needs none of this (``from_pretrained`` is enough). Implement
    both classmethods to get ``from_tiny()``, ``FrozenLMM.from_tiny(name)`` and the contract kit.
    """

    @classmethod
    def tiny_config(cls, variant: str | None = None) -> PretrainedConfig:
        """A few-layer config with the family's real structure (``variant``: one of ``variants()``)."""
        ...

    @classmethod
    def tiny_processor(cls, config: PretrainedConfig) -> ProcessorMixin:
        """The stock processor around an offline tokenizer that fits ``config``."""
        ...


def tiny_factory(adapter_cls: type[BackboneAdapter]) -> TinyFactory:
    """``adapter_cls`` as a :class:`TinyFactory`, or :class:`NoTinyFactoryError` naming the fix."""
    if not isinstance(adapter_cls, TinyFactory):
        raise NoTinyFactoryError(
            f"adapter {adapter_cls.name!r} has no tiny offline fixtures: found no tiny_config / tiny_processor "
            f"on {adapter_cls.__qualname__}, expected the optional TinyFactory protocol. Fix: load a checkpoint "
            "(from_pretrained(path), FrozenLMM.from_pretrained(path), or --model PATH on the command line), or "
            "implement tiny_config(variant) and tiny_processor(config) on the adapter (vlm_adapters.tiny.TinyFactory)."
        )
    return adapter_cls

BASIC_WORDS: tuple[str, ...] = tuple(
    """
    a an the and or of on in at to with from by for is are was be this that it its there here what
    where which who how many much describe image picture photo show find point locate segment please
    answer question user assistant system you i me my your left right top bottom middle center
    centre front back above below near next big small large little red green blue yellow black white
    gray grey brown orange pink purple cat cats dog dogs person people man woman child boy girl car
    bus bike bicycle tree trees sky grass road street house building window door table chair cup
    bottle plate food pizza ball bird horse cow sheep boat train plane water sea beach mountain snow
    sitting standing running walking holding wearing looking playing lying eating two three one four
    circle square triangle shape shapes round
    some all no yes not near far under over behind between . , ? ! : ; ' " - ( ) 0 1 2 3 4 5 6 7 8 9
    """.split()
)
"""Words the tiny tokenizers know; anything else maps to ``<unk>``."""


def build_tokenizer(
    special_tokens: Iterable[str],
    *,
    unk_token: str = "<unk>",
    bos_token: str | None = None,
    eos_token: str | None = None,
    pad_token: str | None = None,
    chat_template: str | None = None,
    words: Iterable[str] = BASIC_WORDS,
    extra_attributes: Mapping[str, str] | None = None,
    padding_side: str = "right",
) -> PreTrainedTokenizerFast:
    """A word-level tokenizer whose ids start with ``special_tokens`` (in order).

    ``extra_attributes`` become named special tokens (e.g. ``{"image_token": "<|image_pad|>"}``)
    so stock processors find them the way they find them on a real checkpoint.
    """
    specials = list(dict.fromkeys([unk_token, *special_tokens]))
    named = [t for t in (bos_token, eos_token, pad_token) if t is not None]
    specials += [t for t in named if t not in specials]
    vocab: dict[str, int] = {}
    for token in [*specials, *words]:
        vocab.setdefault(token, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=unk_token))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##")
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token=unk_token,
        bos_token=bos_token,
        eos_token=eos_token,
        pad_token=pad_token,
        extra_special_tokens=dict(extra_attributes or {}),
        padding_side=padding_side,
    )
    fast.add_special_tokens({"additional_special_tokens": specials[1:]})
    if chat_template is not None:
        fast.chat_template = chat_template
    return fast


def save_tiny_checkpoint(adapter: BackboneAdapter, folder: str | Path, seed: int = 0) -> Path:
    """Save the adapter's tiny random model, config and processor as a loadable checkpoint."""
    folder = Path(folder)
    model: PreTrainedModel = adapter.load_model(seed=seed)
    model.save_pretrained(folder)
    adapter.processor.save_pretrained(folder)
    return folder
