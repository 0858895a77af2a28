"""Exact word-to-image attention capture at SDPA cost.

Research code usually gets attention maps with ``model(..., output_attentions=True)`` under the
eager attention implementation, which materialises ``[layers, heads, seq, seq]`` probabilities (and
runs the slow eager kernels everywhere, the vision tower included). Grounding only needs a few
query rows (the words) against a few key columns (the image tokens). This module keeps the fast
attention implementation for the model's real output and, for the chosen layers and query rows
only, recomputes the probabilities exactly: softmax over the *full* masked row in fp32, then the
image columns are selected. Extra memory is ``O(batch * layers * heads * queries * seq)``, never
``seq ** 2``.

How it hooks in (transformers 5.x): a custom attention function is registered with
``transformers.AttentionInterface`` under a private name (``vlm_capture_<impl>``) and the language
model's config is pointed at that name for the duration of the capture. The function receives the
query and key *after* rotary embedding (mrope included) and key/value *before* GQA repetition, so
nothing about positions is re-derived here. It delegates the real output to the function the model
was using (``sdpa``, ``flash_attention_*``, or the model's own ``eager_attention_forward``), so the
model output is unchanged, and records the captured rows on the side.

A matching mask function must be registered under the same name: in transformers 5.24,
``masking_utils._preprocess_mask_arguments`` returns ``None`` (no mask at all, padding silently
ignored) for any ``config._attn_implementation`` that is not a key of
``ALL_MASK_ATTENTION_FUNCTIONS._global_mapping``. We register the delegate's own mask function, so
the delegate receives exactly the mask it would have received without the capture.
"""

from __future__ import annotations

import inspect
import sys
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, cast

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, AttentionInterface

__all__ = [
    "CAPTURE_IMPL_PREFIX",
    "AttentionCapture",
    "CaptureRequest",
    "attention_rows",
    "capture_attention",
]

CAPTURE_IMPL_PREFIX = "vlm_capture_"
"""Prefix of the attention-implementation names this module registers (``vlm_capture_sdpa``...)."""

AttentionFn = Callable[..., tuple[torch.Tensor, torch.Tensor | None]]

# Attention modules of models currently inside an ``AttentionCapture``; weak so a dropped model is
# not kept alive by a capture somebody forgot to exit.
_ACTIVE: weakref.WeakKeyDictionary[nn.Module, AttentionCapture] = weakref.WeakKeyDictionary()

# Delegates (implementations we can wrap) whose mask format ``attention_rows`` understands: sdpa
# gets a 4-D bool mask or None, eager a 4-D additive float mask, flash a 2-D padding mask or None.
# flex_attention (BlockMask) and paged attention are deliberately not supported.
_UNSUPPORTED_DELEGATES = ("flex_attention", "paged|eager")


@dataclass
class CaptureRequest:
    """What to capture: which query rows, which key columns, which layers.

    Positions index the tokens of the forward's input sequence (for a forward without a cache, as
    ``capture_attention`` runs it, that is the absolute position). Rows of a batch may need
    different numbers of queries/keys: pad with ``-1``; padded entries come back as 0.
    A 1-D tensor is shared by all samples of the batch. A query placed on a padding token gets
    the same meaningless row eager would give (its keys are all masked): don't ask for those.
    """

    query_positions: torch.Tensor
    """LongTensor ``[batch, Q]`` (or ``[Q]``): the rows (e.g. word tokens) to capture, ``-1`` = pad."""
    key_positions: torch.Tensor
    """LongTensor ``[batch, K]`` (or ``[K]``): the columns (e.g. image tokens) to keep, ``-1`` = pad."""
    layers: Sequence[int] | None = None
    """Decoder layer indices (negative allowed); ``None`` captures every decoder layer."""
    hidden_states: bool = True
    """Also gather the hidden states at the query rows (cheap: ``[batch, layers + 1, Q, dim]``)."""


def _as_batched_positions(positions: torch.Tensor, batch: int, name: str) -> torch.Tensor:
    """Normalise a position tensor to ``[batch, N]`` int64 (1-D / batch-1 inputs are broadcast)."""
    if positions.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise TypeError(f"{name} must be an integer tensor, got {positions.dtype}")
    positions = positions.long()
    if positions.ndim == 1:
        positions = positions.unsqueeze(0)
    if positions.ndim != 2:
        raise ValueError(f"{name} must be [batch, N] or [N], got shape {tuple(positions.shape)}")
    if positions.shape[0] == 1 and batch > 1:
        positions = positions.expand(batch, -1)
    if positions.shape[0] != batch:
        raise ValueError(f"{name} has batch {positions.shape[0]} but the forward has batch {batch}")
    return positions


def _mask_rows(
    attention_mask: torch.Tensor,
    rows: torch.Tensor,
    batch: int,
    kv_len: int,
) -> torch.Tensor:
    """The rows ``rows`` ([batch, Q]) of a 4-D mask, as ``[batch, 1 or heads, Q, kv_len]``.

    Only the selected rows are gathered (the full mask is the model's, not ours to copy).
    """
    mask = attention_mask[..., :kv_len]
    mask = mask.expand(batch, -1, -1, -1)
    if mask.shape[2] == 1:  # broadcast over queries (e.g. decoding masks)
        return mask.expand(-1, -1, rows.shape[1], -1)
    batch_index = torch.arange(batch, device=mask.device)[:, None]
    # Advanced indexing on dims 0 and 2 (separated by a slice) puts the indexed dims first:
    # [batch, Q, heads, kv] -> [batch, heads, Q, kv].
    return mask[batch_index, :, rows.to(mask.device)].permute(0, 2, 1, 3)


def attention_rows(
    query: torch.Tensor,
    key: torch.Tensor,
    attention_mask: torch.Tensor | None,
    query_positions: torch.Tensor,
    key_positions: torch.Tensor,
    *,
    scaling: float | None = None,
    is_causal: bool = True,
    sliding_window: int | None = None,
    bottom_right_causal: bool = False,
) -> torch.Tensor:
    """Exact eager attention probabilities for some query rows and key columns, in fp32.

    Args:
        query: ``[batch, heads, q_len, head_dim]`` (after rotary embedding).
        key: ``[batch, kv_heads, kv_len, head_dim]`` (before GQA repetition; ``heads`` must be a
            multiple of ``kv_heads``, query head ``h`` reads key head ``h // (heads // kv_heads)``
            as ``repeat_kv`` does).
        attention_mask: what transformers handed the attention function: a 4-D bool mask (True =
            attend, sdpa), a 4-D additive float mask (eager), a 2-D ``[batch, kv_len]`` padding
            mask (flash), or ``None`` (plain causal, sdpa's ``is_causal`` path).
        query_positions: ``[batch, Q]`` rows in ``0..q_len-1``, ``-1`` = pad.
        key_positions: ``[batch, K]`` columns in ``0..kv_len-1``, ``-1`` = pad.
        scaling: softmax scale; ``None`` means ``head_dim ** -0.5`` (sdpa's default).
        is_causal: used only without a 4-D mask, as sdpa does.
        sliding_window: used only without a 4-D mask (flash passes the window as a kwarg).
        bottom_right_causal: causal alignment without a 4-D mask when ``q_len != kv_len``: flash
            aligns bottom-right, sdpa's ``is_causal`` top-left (for ``q_len == 1`` sdpa attends to
            everything, which is the bottom-right result as well).

    Returns:
        ``[batch, heads, Q, K]`` fp32 probabilities; entries with a ``-1`` position are 0.

    The softmax runs over the *whole* masked row (all ``kv_len`` keys), so the selected columns are
    true probabilities, not renormalised over the image. Logits are computed in fp32 from the
    (possibly bf16) query/key; eager computes ``q @ k`` in the model dtype, so in bf16 the two
    differ by bf16 rounding (ours is the more exact one). Memory: ``batch*heads*Q*kv_len``.
    """
    batch, n_heads, q_len, head_dim = query.shape
    kv_heads, kv_len = key.shape[1], key.shape[2]
    if n_heads % kv_heads != 0:
        raise ValueError(f"query heads ({n_heads}) must be a multiple of key heads ({kv_heads})")
    groups = n_heads // kv_heads
    device = query.device

    qpos = _as_batched_positions(query_positions, batch, "query_positions").to(device)
    kpos = _as_batched_positions(key_positions, batch, "key_positions").to(device)
    n_q, n_k = qpos.shape[1], kpos.shape[1]
    q_valid = qpos >= 0
    k_valid = kpos >= 0
    rows = qpos.clamp(min=0)
    cols = kpos.clamp(min=0)

    # [batch, heads, Q, head_dim] -> grouped by key head: [batch, kv_heads, groups, Q, head_dim]
    q_rows = torch.gather(query, 2, rows[:, None, :, None].expand(batch, n_heads, n_q, head_dim))
    q_rows = q_rows.float().reshape(batch, kv_heads, groups, n_q, head_dim)
    k_t = key.float().unsqueeze(2).transpose(-1, -2)  # [batch, kv_heads, 1, head_dim, kv_len]
    scale = scaling if scaling is not None else head_dim**-0.5
    # Same operation order as eager (matmul, then scale) to stay bit-close to it in fp32.
    scores = (torch.matmul(q_rows, k_t) * scale).reshape(batch, n_heads, n_q, kv_len)

    min_value = torch.finfo(torch.float32).min
    if attention_mask is not None and attention_mask.ndim == 4:
        mask_rows = _mask_rows(attention_mask, rows, batch, kv_len).to(device)
        if mask_rows.dtype == torch.bool:
            scores = scores.masked_fill(~mask_rows, min_value)
        else:
            scores = scores + mask_rows.float()
    else:
        kv_index = torch.arange(kv_len, device=device)
        allowed = torch.ones(batch, n_q, kv_len, dtype=torch.bool, device=device)
        if is_causal and q_len > 1:
            offset = kv_len - q_len if bottom_right_causal else 0
            absolute_rows = rows + offset
            allowed &= kv_index[None, None, :] <= absolute_rows[:, :, None]
            if sliding_window is not None:
                allowed &= absolute_rows[:, :, None] - kv_index[None, None, :] < sliding_window
        elif sliding_window is not None:
            absolute_rows = rows + (kv_len - q_len)
            allowed &= absolute_rows[:, :, None] - kv_index[None, None, :] < sliding_window
        if attention_mask is not None:
            if attention_mask.ndim != 2:
                raise ValueError(f"unsupported attention mask shape {tuple(attention_mask.shape)}")
            padding = attention_mask[:, -kv_len:].to(device=device).bool()
            allowed &= padding[:, None, :]
        scores = scores.masked_fill(~allowed[:, None], min_value)

    probs = torch.softmax(scores, dim=-1)
    picked = torch.gather(probs, 3, cols[:, None, None, :].expand(batch, n_heads, n_q, n_k))
    valid = q_valid[:, None, :, None] & k_valid[:, None, None, :]
    return picked * valid


def _eager_delegate(module: nn.Module) -> AttentionFn:
    """The model file's own ``eager_attention_forward`` (what ``eager`` means for this model)."""
    model_module = sys.modules.get(type(module).__module__)
    fn = getattr(model_module, "eager_attention_forward", None)
    if fn is None:
        # Exotic model file without the standard eager function: sdpa with the eager (additive)
        # mask gives the same output up to float rounding.
        return ALL_ATTENTION_FUNCTIONS["sdpa"]
    return fn  # type: ignore[no-any-return]


def _make_capture_attention(delegate_name: str) -> AttentionFn:
    """Build the registered attention function wrapping ``delegate_name``."""
    bottom_right = "flash" in delegate_name

    def capture_attention_forward(
        module: nn.Module,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        delegate = _eager_delegate(module) if delegate_name == "eager" else ALL_ATTENTION_FUNCTIONS[delegate_name]
        output = delegate(module, query, key, value, attention_mask, **kwargs)
        capture = _ACTIVE.get(module)
        if capture is not None:
            capture._record(module, query, key, attention_mask, kwargs, bottom_right)
        return output

    capture_attention_forward.__name__ = f"capture_attention_forward_{delegate_name}"
    return capture_attention_forward


def _register(delegate_name: str) -> str:
    """Register (idempotently) the capture attention + mask functions for a delegate; return the name.

    Registrations are global and permanent on purpose: the function only records for modules
    inside an active capture and otherwise just delegates, so leaving it registered is harmless,
    and unregistering on exit would break a concurrent capture on another model.
    """
    if delegate_name in _UNSUPPORTED_DELEGATES or delegate_name.startswith(CAPTURE_IMPL_PREFIX):
        raise NotImplementedError(f"attention capture cannot wrap attn_implementation={delegate_name!r}")
    if delegate_name != "eager" and delegate_name not in ALL_ATTENTION_FUNCTIONS:
        raise NotImplementedError(f"unknown attention implementation {delegate_name!r}")
    mask_fn = cast("Callable[..., Any] | None", ALL_MASK_ATTENTION_FUNCTIONS._global_mapping.get(delegate_name))
    if mask_fn is None:
        raise NotImplementedError(
            f"no mask function is registered for {delegate_name!r}; the capture could not reproduce its mask"
        )
    name = CAPTURE_IMPL_PREFIX + delegate_name
    if name not in AttentionInterface._global_mapping:
        AttentionInterface.register(name, _make_capture_attention(delegate_name))
    if name not in AttentionMaskInterface._global_mapping:
        # Without this, transformers builds *no* mask for the unknown name (padding is dropped).
        AttentionMaskInterface.register(name, mask_fn)
    return name


def _decoder_layers(decoder: nn.Module) -> nn.ModuleList:
    layers = getattr(decoder, "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise NotImplementedError(
            f"{type(decoder).__name__} has no `layers` ModuleList; cannot locate the decoder layers"
        )
    return layers


def _first_tensor(output: Any) -> torch.Tensor:
    """The hidden state in a module output (a tensor in 5.x, a tuple or ModelOutput elsewhere)."""
    if isinstance(output, torch.Tensor):
        return output
    last = getattr(output, "last_hidden_state", None)
    if isinstance(last, torch.Tensor):
        return last
    first = output[0]
    if not isinstance(first, torch.Tensor):
        raise TypeError(f"cannot find the hidden state in a {type(output).__name__}")
    return first


class AttentionCapture:
    """Context manager that captures exact attention rows from the language model of ``model``.

    Inside the ``with`` block, the language model (``model.get_decoder()``) runs a registered
    wrapper around its attention implementation; the vision tower is untouched. After a forward:

    * ``attention``: fp32 ``[batch, len(layers), heads, Q, K]``; ``attention[:, i]`` is decoder
      layer ``layers[i]``; entries whose query or key position is ``-1`` are 0. Equal (fp32, to
      ~1e-6) to ``eager`` ``output_attentions[layer][b, :, q, k]``.
    * ``hidden_states`` (if requested): ``[batch, num_layers + 1, Q, dim]`` in the model dtype,
      indexed exactly like the stock ``output_hidden_states`` tuple: index 0 is the input of the
      first decoder layer (embeddings, images merged in), ``i`` the output of layer ``i-1``, and the
      last one the final-norm output (transformers ties the last entry to ``last_hidden_state``).
      They are gathered by forward hooks at the query rows only, so no ``[seq, dim]`` tensor per
      layer is kept (``output_hidden_states=True`` would keep ``layers * seq * dim``).

    The model's original attention implementation (and nothing else) is restored on exit, also
    when the forward raises. Results stay readable after exit; a second forward inside the same
    block overwrites them. Not thread-safe for one model (the switch is on its shared config).
    """

    def __init__(self, model: PreTrainedModel, request: CaptureRequest) -> None:
        self.model = model
        self.request = request
        self.decoder: nn.Module = model.get_decoder()
        decoder_config = getattr(self.decoder, "config", None)
        if decoder_config is None:
            raise TypeError(f"{type(self.decoder).__name__} has no config; cannot switch its attention")
        self._decoder_config = decoder_config
        n_layers = getattr(decoder_config, "num_hidden_layers", None)
        layers_module = getattr(self.decoder, "layers", None)
        if isinstance(layers_module, nn.ModuleList):
            n_layers = len(layers_module)
        if not isinstance(n_layers, int):
            raise TypeError("cannot determine the number of decoder layers")
        self.num_layers: int = n_layers
        wanted = list(range(n_layers)) if request.layers is None else list(request.layers)
        resolved = []
        for layer in wanted:
            if not -n_layers <= layer < n_layers:
                raise IndexError(f"layer {layer} out of range for {n_layers} decoder layers")
            resolved.append(layer % n_layers)
        if len(set(resolved)) != len(resolved):
            raise ValueError(f"duplicate layers in {list(wanted)}")
        self.layers: list[int] = resolved
        self._slot = {layer: i for i, layer in enumerate(resolved)}
        self._attention: list[torch.Tensor | None] = [None] * len(resolved)
        self._hidden: list[torch.Tensor | None] = [None] * (n_layers + 1)
        self._hooks: list[torch.utils.hooks.RemovableHandle] = []
        self._saved_impl: list[tuple[Any, str | None]] = []
        self._attention_modules: list[nn.Module] = [
            m for m in self.decoder.modules() if getattr(m, "layer_idx", None) is not None
        ]
        self._forward_checked = False
        self._active = False

    # ------------------------------------------------------------------ context manager
    def __enter__(self) -> AttentionCapture:
        if self._active:
            raise RuntimeError("this AttentionCapture is already active")
        current = self._decoder_config._attn_implementation or "sdpa"
        if current.startswith(CAPTURE_IMPL_PREFIX):
            raise RuntimeError("the model is already inside an AttentionCapture (captures do not nest)")
        name = _register(current)
        try:
            # The configs the attention modules and the mask builder read (normally one object:
            # the text config). Set the internal attribute directly: the property setter would
            # recurse into sub-configs, and set_attn_implementation validates/warns per call.
            configs = {id(self._decoder_config): self._decoder_config}
            for module in self._attention_modules:
                cfg = getattr(module, "config", None)
                if cfg is not None:
                    configs[id(cfg)] = cfg
            for cfg in configs.values():
                self._saved_impl.append((cfg, cfg._attn_implementation_internal))
                cfg._attn_implementation_internal = name
            for module in self._attention_modules:
                _ACTIVE[module] = self
            self._hooks.append(self.decoder.register_forward_pre_hook(self._on_forward_start))
            if self.request.hidden_states:
                self._install_hidden_hooks()
            self._active = True
        except BaseException:
            self._restore()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._restore()

    def _restore(self) -> None:
        """Undo everything ``__enter__`` did; safe to call on a partial enter."""
        for cfg, impl in reversed(self._saved_impl):
            cfg._attn_implementation_internal = impl
        self._saved_impl.clear()
        for module in self._attention_modules:
            if _ACTIVE.get(module) is self:
                del _ACTIVE[module]
        for handle in self._hooks:
            handle.remove()
        self._hooks.clear()
        self._active = False

    # ------------------------------------------------------------------ results
    @property
    def attention(self) -> torch.Tensor:
        """fp32 ``[batch, len(layers), heads, Q, K]`` from the last forward."""
        if any(t is None for t in self._attention):
            missing = [layer for layer, t in zip(self.layers, self._attention, strict=True) if t is None]
            raise RuntimeError(f"no attention captured for layers {missing}; did a forward run inside?")
        tensors = [t for t in self._attention if t is not None]
        device = tensors[0].device
        return torch.stack([t.to(device) for t in tensors], dim=1)

    @property
    def hidden_states(self) -> torch.Tensor | None:
        """``[batch, num_layers + 1, Q, dim]`` (stock ``output_hidden_states`` indexing), or None."""
        if not self.request.hidden_states:
            return None
        if any(t is None for t in self._hidden):
            raise RuntimeError("hidden states incomplete; did a forward run inside the capture?")
        tensors = [t for t in self._hidden if t is not None]
        device = tensors[0].device
        return torch.stack([t.to(device) for t in tensors], dim=1)

    # ------------------------------------------------------------------ recording
    def _on_forward_start(self, module: nn.Module, args: Any) -> None:
        self._forward_checked = False
        self._attention = [None] * len(self.layers)
        self._hidden = [None] * (self.num_layers + 1)

    def _check_positions(self, batch: int, q_len: int, kv_len: int | None) -> None:
        """Once per forward: fail loudly on positions outside the sequence (a host sync or two).

        Called with ``kv_len=None`` from the hidden-state hook, which runs before any attention.
        """
        if self._forward_checked:
            return
        checks = [("query_positions", self.request.query_positions, q_len)]
        if kv_len is not None:
            checks.append(("key_positions", self.request.key_positions, kv_len))
        for name, positions, limit in checks:
            pos = _as_batched_positions(positions, batch, name)
            if pos.numel() and (int(pos.max()) >= limit or int(pos.min()) < -1):
                raise IndexError(f"{name} must lie in [-1, {limit}), got {int(pos.min())}..{int(pos.max())}")
        self._forward_checked = kv_len is not None

    def _gather_rows(self, hidden: torch.Tensor) -> torch.Tensor:
        batch, _, dim = hidden.shape
        qpos = _as_batched_positions(self.request.query_positions, batch, "query_positions")
        qpos = qpos.to(hidden.device)
        rows = torch.gather(hidden, 1, qpos.clamp(min=0)[:, :, None].expand(-1, -1, dim))
        return (rows * (qpos >= 0)[:, :, None].to(rows.dtype)).detach()

    def _install_hidden_hooks(self) -> None:
        layers = _decoder_layers(self.decoder)

        def first_input(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            hidden = args[0] if args else kwargs["hidden_states"]
            self._check_positions(hidden.shape[0], hidden.shape[1], None)
            self._hidden[0] = self._gather_rows(hidden)

        self._hooks.append(layers[0].register_forward_pre_hook(first_input, with_kwargs=True))
        for i, layer in enumerate(layers[:-1]):

            def layer_output(module: nn.Module, args: Any, output: Any, index: int = i + 1) -> None:
                self._hidden[index] = self._gather_rows(_first_tensor(output))

            self._hooks.append(layer.register_forward_hook(layer_output))

        def final_output(module: nn.Module, args: Any, output: Any) -> None:
            self._hidden[self.num_layers] = self._gather_rows(_first_tensor(output))

        self._hooks.append(self.decoder.register_forward_hook(final_output))

    def _record(
        self,
        module: nn.Module,
        query: torch.Tensor,
        key: torch.Tensor,
        attention_mask: torch.Tensor | None,
        kwargs: Mapping[str, Any],
        bottom_right: bool,
    ) -> None:
        layer = getattr(module, "layer_idx", None)
        slot = self._slot.get(layer) if isinstance(layer, int) else None
        if slot is None:
            return
        for unsupported in ("softcap", "s_aux", "position_bias"):
            if kwargs.get(unsupported) is not None:
                raise NotImplementedError(f"attention capture does not support `{unsupported}` yet")
        self._check_positions(query.shape[0], query.shape[2], key.shape[2])
        is_causal = kwargs.get("is_causal")
        if is_causal is None:
            is_causal = bool(getattr(module, "is_causal", True))
        with torch.no_grad():
            self._attention[slot] = attention_rows(
                query.detach(),
                key.detach(),
                attention_mask,
                self.request.query_positions,
                self.request.key_positions,
                scaling=kwargs.get("scaling"),
                is_causal=is_causal,
                sliding_window=kwargs.get("sliding_window"),
                bottom_right_causal=bottom_right,
            )


def _accepts(model: nn.Module, name: str) -> bool:
    try:
        return name in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def capture_attention(
    model: PreTrainedModel,
    inputs: Mapping[str, Any],
    request: CaptureRequest,
    *,
    logits_to_keep: int | torch.Tensor | None = 1,
    **forward_kwargs: Any,
) -> tuple[Any, AttentionCapture]:
    """Run one forward of ``model`` on ``inputs`` under an :class:`AttentionCapture`.

    Runs under ``torch.no_grad()`` (frozen-model inference) with ``use_cache=False`` unless given:
    a KV cache is useless for a single forward and would hold ``layers * seq * dim`` for nothing.

    ``logits_to_keep``: the image-text-to-text models of transformers 5.24 and the causal LMs
    accept it; ``1`` (the default) projects only
    the last position onto the vocabulary, which is the cheap choice when the logits are not the
    point (full logits are ``batch * seq * vocab`` floats, about 0.6 GB for seq 1000 and a 152k
    vocabulary in fp32). Pass ``0`` for all positions, or ``None`` to leave the model's default.
    Ignored for models whose forward has no such argument (e.g. base models, which have no head).
    """
    kwargs = dict(inputs)
    kwargs.update(forward_kwargs)
    if logits_to_keep is not None and "logits_to_keep" not in kwargs and _accepts(model, "logits_to_keep"):
        kwargs["logits_to_keep"] = logits_to_keep
    if "use_cache" not in kwargs and _accepts(model, "use_cache"):
        kwargs["use_cache"] = False
    with torch.no_grad(), AttentionCapture(model, request) as capture:
        output = model(**kwargs)
    return output, capture
