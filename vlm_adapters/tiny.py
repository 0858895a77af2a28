"""Offline tiny factories: tokenizers (and through adapters, processors and models) with no hub.

Tests and the default CLI run build everything here: a byte-level BPE tokenizer (the kind
released VLM checkpoints mostly ship) trained with the ``tokenizers`` library on a small corpus
shipped in the package, wrapped in ``PreTrainedTokenizerFast``; the stock image processor; and a
random-weight model from a few-layer config. ``save_pretrained`` / ``from_pretrained`` on a
local folder round-trips all of them, so the real-checkpoint path is the same code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PretrainedConfig, PreTrainedTokenizerFast
from transformers.processing_utils import ProcessorMixin

from .errors import NoTinyFactoryError

if TYPE_CHECKING:
    from .adapter import BackboneAdapter

TINY_VOCAB_SIZE = 1000
"""Upper bound on the tiny tokenizers' vocabulary (special tokens + 256 bytes + merges): tiny
embeddings, yet common caption words are single tokens as on a real checkpoint."""


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
"""Common caption words; the shipped corpus uses all of them, and plugins may add their own."""


def corpus_lines() -> list[str]:
    """The shipped training text (``vlm_adapters/data/tiny_corpus.txt``), one line per entry."""
    return files("vlm_adapters").joinpath("data/tiny_corpus.txt").read_text(encoding="utf-8").splitlines()


@lru_cache(maxsize=32)
def _trained_bpe(specials: tuple[str, ...], extra_words: tuple[str, ...], vocab_size: int) -> str:
    """The trained tokenizer as JSON. Training is deterministic, so the cache only saves time."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=list(specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte: no text is ever unknown
        show_progress=False,
    )
    lines = corpus_lines() + ([" ".join(extra_words)] if extra_words else [])
    tok.train_from_iterator(lines, trainer=trainer)
    return tok.to_str()


def build_tokenizer(
    special_tokens: Iterable[str],
    *,
    unk_token: str | None = None,
    bos_token: str | None = None,
    eos_token: str | None = None,
    pad_token: str | None = None,
    chat_template: str | None = None,
    words: Iterable[str] = (),
    extra_attributes: Mapping[str, str] | None = None,
    padding_side: str = "right",
    vocab_size: int = TINY_VOCAB_SIZE,
) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer whose ids start with ``special_tokens`` (in order).

    Like most released VLM tokenizers it has no unknown token: any text, Unicode
    included, is encoded as bytes, and a word after a space is a different token (``Ġred``).
    ``words`` are added to the training text, so they become whole tokens. ``extra_attributes``
    become named special tokens (e.g. ``{"image_token": "<|image_pad|>"}``) so stock processors
    find them the way they find them on a real checkpoint.
    """
    specials = list(dict.fromkeys([*([unk_token] if unk_token else []), *special_tokens]))
    specials += [t for t in (bos_token, eos_token, pad_token) if t is not None and t not in specials]
    tok = Tokenizer.from_str(_trained_bpe(tuple(specials), tuple(words), vocab_size))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token=unk_token,
        bos_token=bos_token,
        eos_token=eos_token,
        pad_token=pad_token,
        extra_special_tokens=dict(extra_attributes or {}),
        padding_side=padding_side,
    )
    fast.add_special_tokens({"additional_special_tokens": [t for t in specials if t != unk_token]})
    if chat_template is not None:
        fast.chat_template = chat_template
    return fast


def save_tiny_checkpoint(adapter: BackboneAdapter, folder: str | Path, seed: int = 0) -> Path:
    """Save the adapter's tiny random model, config and processor as a loadable checkpoint.

    The folder loads like a downloaded one (``FrozenLMM.from_pretrained(folder)``,
    ``vlm-adapters run --model folder``), which is how the real-checkpoint path is tested offline.
    """
    folder = Path(folder)
    model = adapter.load_model(seed=seed)
    model.save_pretrained(folder)
    adapter.processor.save_pretrained(folder)
    return folder
