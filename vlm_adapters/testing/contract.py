"""The adapter contract: one base class a plugin author subclasses to test an adapter.

```python
from vlm_adapters.testing import AdapterContract

class TestMyAdapter(AdapterContract):
    adapter_name = "my_backbone"
```

Each ``test_*`` method is one promise every adapter keeps, checked against the stock
processor and the stock model (the tiny random-weight one from ``tiny_config``): the geometry
agrees with the processor on many image sizes (token counts, runs, wrapper tokens; plus
whatever a family adds in :meth:`AdapterContract.check_stock_geometry`), ``normalize``
reproduces ``prepare``, bad inputs raise ``VisionInputError``, a batch equals its samples,
``prepare`` gives the same logits as the stock processor path, and captured attention equals
eager attention on every view. Nothing here depends on the spec kind or the view layout.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import pytest
import torch

from ..adapter import BackboneAdapter, contiguous_runs
from ..batch import VisionBatch
from ..errors import VisionInputError
from ..geometry import ImageGeometry
from ..registry import get_adapter
from .images import random_sizes, smooth_image, solid_image


def sample_from_batch(batch: VisionBatch, index: int = 0) -> dict[str, Any]:
    """The dataset-style dict (F-LMM keys) that describes one sample of a prepared batch."""
    if batch.batch_size != 1:
        raise ValueError("sample_from_batch expects a one-sample batch")
    sample: dict[str, Any] = {k: v for k, v in batch.inputs.items() if k not in ("attention_mask",)}
    sample["input_ids"] = batch.input_ids[index]
    for key in ("mm_token_type_ids", "token_type_ids"):
        if key in sample:
            sample[key] = sample[key][index]
    sample["image_sizes"] = [list(g.original_size) for g in batch.geometries[index]]
    return sample


def assert_inputs_equal(got: Mapping[str, torch.Tensor], want: Mapping[str, torch.Tensor]) -> None:
    """Every tensor ``want`` has is in ``got`` with the same shape and values."""
    for key, value in want.items():
        assert key in got, f"missing input {key!r}; got {sorted(got)}"
        assert tuple(got[key].shape) == tuple(value.shape), f"{key}: {tuple(got[key].shape)} != {tuple(value.shape)}"
        if value.is_floating_point():
            torch.testing.assert_close(got[key].float(), value.float(), rtol=0, atol=1e-6, msg=key)
        else:
            assert torch.equal(got[key].cpu(), value.cpu()), f"{key} differs"


class AdapterContract:
    """Subclass with ``adapter_name`` (and ``variant`` for adapters with several tiny configs)."""

    adapter_name: ClassVar[str]
    variant: ClassVar[str | None] = None
    spec_size_count: ClassVar[int] = 60
    """Image sizes run through the full stock processor (more in each family's own tests)."""
    count_size_count: ClassVar[int] = 300
    """Image sizes whose token count is compared with the processor's own count function."""
    model_sizes: ClassVar[tuple[tuple[int, int], ...]] = ((427, 640), (300, 200))
    """Image sizes run through the tiny model."""
    prompt_text: ClassVar[str] = "describe the red cat on the left"
    logits_atol: ClassVar[float] = 1e-5
    corpus_chains: ClassVar[int] = 30
    """Chains of 2-3 corpus mutations that hypothesis draws (derandomised: the same ones every run)."""
    unobservable_mistakes: ClassVar[Mapping[str, str]] = {}
    """Corpus mutation name -> why no input of this adapter can show that mistake (it is then taken
    as given; a crash still fails). Say it in the adapter's docs too."""

    # --- fixtures ------------------------------------------------------------------------
    @pytest.fixture(scope="class")
    @classmethod
    def adapter_cls(cls) -> type[BackboneAdapter]:
        return get_adapter(cls.adapter_name)

    @pytest.fixture(scope="class")
    @classmethod
    def adapter(cls, adapter_cls: type[BackboneAdapter]) -> BackboneAdapter:
        return adapter_cls.from_tiny(cls.variant)

    @pytest.fixture(scope="class")
    @classmethod
    def model(cls, adapter: BackboneAdapter) -> Any:
        return adapter.load_model(seed=0)

    def prompt(self, adapter: BackboneAdapter, num_images: int = 1) -> str:
        return adapter.format_prompt(self.prompt_text, num_images=num_images, answer="a cat on a chair")

    def forward(self, model: Any, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            return model(**inputs).logits.float()

    # --- the contract --------------------------------------------------------------------
    def test_registered_under_its_name(self, adapter_cls: type[BackboneAdapter], adapter: BackboneAdapter) -> None:
        assert adapter_cls.name == self.adapter_name
        assert adapter.config.model_type in adapter_cls.model_types
        assert adapter.spec.kind == adapter_cls.spec_kind

    def test_spec_round_trips_json(self, adapter: BackboneAdapter) -> None:
        from ..spec import spec_from_json

        assert spec_from_json(adapter.spec.model_dump_json()) == adapter.spec

    def test_token_count_matches_stock_count(self, adapter: BackboneAdapter) -> None:
        """The processor's own multimodal token count agrees with the geometry on many sizes.

        Processors differ in what they count (the image-token ids alone, or the wrappers too), so
        either of the geometry's counts is accepted; sizes the spec refuses the processor refuses too.
        A processor without a count function is counted on its output instead (fewer sizes).
        """
        count_fn = getattr(adapter.processor, "_get_num_multimodal_tokens", None)
        sizes = random_sizes(self.count_size_count if count_fn else self.spec_size_count, seed=2, low=4, high=4000)

        def stock_count(h: int, w: int) -> int:
            if count_fn is not None:
                return int(count_fn(image_sizes=[(h, w)]).num_image_tokens[0])
            out = adapter.processor(images=[solid_image(h, w)], text=[adapter.image_placeholder], return_tensors="pt")
            return int((out["input_ids"] == adapter.spec.image_token_id).sum())

        for h, w in sizes:
            try:
                geometry = adapter.spec.geometry((h, w))
            except VisionInputError:
                with pytest.raises(Exception):  # noqa: B017  (any refusal: processors raise plain errors)
                    stock_count(h, w)
                continue
            stock = stock_count(h, w)
            assert stock in (geometry.num_image_tokens, geometry.num_prompt_tokens), (
                f"{(h, w)}: processor counts {stock}, geometry {geometry.num_image_tokens} image tokens "
                f"({geometry.num_prompt_tokens} with wrappers)"
            )

    def test_layout_matches_stock_processor(self, adapter: BackboneAdapter) -> None:
        """On many sizes, the stock processor's expanded prompt has exactly the geometry's image
        tokens, in its runs, plus its wrapper tokens; then the plugin's own checks
        (:meth:`check_stock_geometry`) and, for padded single views, where the content lands."""
        placeholder = adapter.image_placeholder
        framing = self.processor_framing(adapter)
        for i, (h, w) in enumerate(random_sizes(self.spec_size_count, seed=1, low=4, high=1200)):
            h, w = max(h, 2), max(w, 2)
            try:
                geometry = adapter.spec.geometry((h, w))
            except VisionInputError:
                continue
            out = adapter.processor(images=[smooth_image(h, w, seed=i)], text=[placeholder], return_tensors="pt")
            ids = out["input_ids"][0]
            positions = (ids == adapter.spec.image_token_id).nonzero().flatten()
            assert positions.numel() == geometry.num_image_tokens, f"{(h, w)}: processor gave {positions.numel()}"
            assert contiguous_runs(positions) == geometry.run_lengths, (h, w)
            assert ids.numel() - framing == geometry.num_prompt_tokens, (
                f"{(h, w)}: the processor added {ids.numel() - framing} tokens for the image, "
                f"the geometry says {geometry.num_prompt_tokens}"
            )
            self.check_stock_geometry(adapter, (h, w), geometry)
            if geometry.is_single_view and i % 2 == 0:
                self._check_content(adapter, geometry)

    def processor_framing(self, adapter: BackboneAdapter) -> int:
        """Tokens the stock processor writes around a prompt that is only the image placeholder, other
        than the image's own: by default the tokenizer's special tokens (a BOS). Override where the
        processor frames every prompt itself (say, a newline that ends every prompt)."""
        tokenizer = adapter.processor.tokenizer
        placeholder = adapter.image_placeholder
        with_special = len(tokenizer(placeholder)["input_ids"])
        return with_special - len(tokenizer(placeholder, add_special_tokens=False)["input_ids"])

    def check_stock_geometry(self, adapter: BackboneAdapter, size: tuple[int, int], geometry: ImageGeometry) -> None:
        """Override to compare what only this family's processor says (grids, tile counts) with
        ``geometry`` for an image of ``size``; called for every size of the layout check."""

    @staticmethod
    def _check_content(adapter: BackboneAdapter, geometry: ImageGeometry) -> None:
        """A white image's content sits exactly inside the geometry's padding on the processor's
        output, where that output is an image of the view's input size (not a patch matrix).

        The margin is 1 input pixel for resampling, wider where a small image is upscaled (padding
        before an upscale blurs the content edge over about twice the upscale factor).
        """
        h, w = geometry.original_size
        out = adapter.processor.image_processor(images=[solid_image(h, w)], return_tensors="pt")
        pixels = out["pixel_values"]
        ih, iw = geometry.input_size
        if pixels.ndim < 3 or tuple(pixels.shape[-2:]) != (ih, iw) or geometry.padding.is_zero:
            return
        spec = adapter.spec
        raw = pixels.reshape(-1, *pixels.shape[-3:])[0].float()
        raw = raw * torch.tensor(spec.image_std).view(3, 1, 1) + torch.tensor(spec.image_mean).view(3, 1, 1)
        bright = raw.mean(0) > 0.9
        p = geometry.padding
        m = max(1, math.ceil(2 * max(geometry.content_height / h, geometry.content_width / w)))
        t, b = int(p.top), ih - int(p.bottom)
        left, r = int(p.left), iw - int(p.right)
        if b - t > 2 * m and r - left > 2 * m:
            assert bright[t + m : b - m, left + m : r - m].all(), "content area is not where the geometry says"
        if t > m:
            assert not bright[: t - m].any(), "padding above the content holds content"
        if ih - b > m:
            assert not bright[b + m :].any(), "padding below the content holds content"
        if left > m:
            assert not bright[:, : left - m].any(), "padding left of the content holds content"
        if iw - r > m:
            assert not bright[:, r + m :].any(), "padding right of the content holds content"

    def test_prepare_matches_stock_processor_logits(self, adapter: BackboneAdapter, model: Any) -> None:
        image = smooth_image(*self.model_sizes[0], seed=3)
        text = self.prompt(adapter)
        batch = adapter.prepare([image], [text])
        stock = adapter.processor(images=[image], text=[text], return_tensors="pt")
        stock_inputs = {k: v for k, v in stock.items() if isinstance(v, torch.Tensor)}
        torch.testing.assert_close(
            self.forward(model, batch.inputs), self.forward(model, stock_inputs), rtol=0, atol=self.logits_atol
        )

    def test_token_positions_and_grid(self, adapter: BackboneAdapter) -> None:
        """Every view's tokens are where the geometry says, in raster order, separators excluded."""
        sizes = list(self.model_sizes)
        images = [smooth_image(h, w, seed=i) for i, (h, w) in enumerate(sizes)]
        batch = adapter.prepare([images], [self.prompt(adapter, num_images=len(images))])
        ids = batch.input_ids[0]
        for geometry, positions in zip(batch.geometries[0], batch.image_token_positions[0], strict=True):
            assert positions.numel() == geometry.num_image_tokens
            assert (ids[positions] == adapter.spec.image_token_id).all()
            assert contiguous_runs(positions) == geometry.run_lengths
            tagged = positions.float() + 1  # 0 stays free to mark what views_to_tokens fills in
            views = adapter.tokens_to_views(tagged, geometry)
            assert len(views) == geometry.num_views
            for view, grid in zip(geometry.views, views, strict=True):
                assert tuple(grid.shape[-2:]) == view.token_grid
                assert float(grid.reshape(-1)[0]) == float(tagged[view.offset])
                if adapter.spec.token_order == "raster" and view.temporal == 1:
                    run = contiguous_runs(positions[view.offset : view.end])
                    assert run == [view.num_tokens], f"view {view.name} is split by text: {run}"
                    assert torch.all(grid[:, 1:] - grid[:, :-1] == 1)
                    assert torch.all(grid[1:, :] - grid[:-1, :] == view.token_grid[1] + view.row_separators)
            back = adapter.views_to_tokens(views, geometry)
            cells = back != 0
            assert torch.equal(back[cells], tagged[cells])
            assert int(cells.sum()) == sum(v.num_cells for v in geometry.views)

    def test_geometry_round_trip(self, adapter: BackboneAdapter) -> None:
        """A full mask lands on every view's content; ones on every view come back as ones wherever
        some view shows the image, and as zeros where none does."""
        for h, w in random_sizes(20, seed=7, low=16, high=900):
            try:
                g = adapter.spec.geometry((h, w))
            except VisionInputError:
                continue
            grids = g.to_view_grids(torch.ones(h, w))
            for view, on_grid in zip(g.views, grids, strict=True):
                assert tuple(on_grid.shape) == view.token_grid
                ph, pw = view.pixels_per_token
                covered = float(on_grid.sum()) * ph * pw
                assert abs(covered - view.content_height * view.content_width) <= 2 * (
                    ph * view.input_size[1] + pw * view.input_size[0]
                ), view.name
            back = g.to_image([torch.ones(*v.token_grid) for v in g.views])
            assert tuple(back.shape) == (h, w)
            torch.testing.assert_close(back, (g.coverage() > 0).float())

    def test_normalize_reproduces_prepare(self, adapter: BackboneAdapter) -> None:
        image = smooth_image(*self.model_sizes[0], seed=5)
        batch = adapter.prepare([image], [self.prompt(adapter)])
        again = adapter.normalize(sample_from_batch(batch))
        assert_inputs_equal(again.inputs, {k: v for k, v in batch.inputs.items() if k != "attention_mask"})
        assert again.geometries == batch.geometries
        for a, b in zip(again.image_token_positions[0], batch.image_token_positions[0], strict=True):
            assert torch.equal(a, b)

    def test_bad_inputs_raise_vision_input_error(self, adapter: BackboneAdapter) -> None:
        image = smooth_image(*self.model_sizes[0], seed=6)
        good = sample_from_batch(adapter.prepare([image], [self.prompt(adapter)]))
        ids = good["input_ids"]
        keep = torch.ones_like(ids, dtype=torch.bool)
        keep[int((ids == adapter.spec.image_token_id).nonzero()[0])] = False
        one_token_short = {**good, "input_ids": ids[keep]}
        for key in ("mm_token_type_ids", "token_type_ids"):
            if key in good:
                one_token_short[key] = good[key][keep]
        pixels = good["pixel_values"]
        flat = pixels.reshape(pixels.shape[0], -1) if pixels.ndim != 2 else pixels
        disguised = {**good, "pixel_values": flat.reshape(1, 1, *flat.shape).expand(1, 3, *flat.shape)}
        no_pixels = {k: v for k, v in good.items() if k != "pixel_values"}
        for name, bad in (
            ("one image token short", one_token_short),
            ("patch matrix as image", disguised),
            ("no pixel values", no_pixels),
        ):
            try:
                adapter.normalize(bad)
            except VisionInputError as exc:
                message = str(exc)
            else:
                pytest.fail(f"bad input {name!r} was accepted: normalize() must raise a VisionInputError")
            assert "found" in message and "expected" in message and "Fix:" in message, (name, message)

    def test_bad_input_corpus(self, adapter: BackboneAdapter, model: Any) -> None:
        """Every mutation of the corpus (:mod:`vlm_adapters.testing.corpus`) on every sample format:
        refused with a ``VisionInputError``, or accepted as a batch the oracle and the stock model
        accept. A failure names the format and the mutations, e.g. ``research + ids_negative``."""
        from .corpus import run_corpus

        report = run_corpus(adapter, model, chains=0)
        failures = report.failures_except(self.unobservable_mistakes)
        assert not failures, (
            f"{len(failures)} of {len(report.outcomes)} corpus samples were not refused with a VisionInputError "
            f"nor accepted consistently (format + mutations: what happened):\n"
            + "\n".join(f"{o.kind}: {o.label}: {o.detail}" for o in failures[:12])
        )
        assert report.counts["refused"] > 0 and report.counts["accepted"] > 0, report.counts

    def test_bad_input_chains(self, adapter: BackboneAdapter, model: Any) -> None:
        """Chains of 2-3 corpus mutations drawn by hypothesis (``corpus_chains`` examples, the same every
        run): each refused or accepted consistently; a failure is shrunk to the fewest mutations."""
        from .corpus import check_chains

        check_chains(adapter, model, examples=self.corpus_chains, unobservable=self.unobservable_mistakes)

    def test_batch_equals_samples(self, adapter: BackboneAdapter, model: Any) -> None:
        samples = []
        for i, (h, w) in enumerate(self.model_sizes):
            text = adapter.format_prompt(self.prompt_text + " now" * i, num_images=1, answer="a cat")
            samples.append(sample_from_batch(adapter.prepare([smooth_image(h, w, seed=10 + i)], [text])))
        batch = adapter.collate(samples)
        assert batch.batch_size == len(samples)
        logits = self.forward(model, batch.inputs)
        for b, sample in enumerate(samples):
            single = adapter.normalize(sample)
            ref = self.forward(model, single.inputs)[0]
            valid = batch.inputs["attention_mask"][b].bool()
            torch.testing.assert_close(logits[b][valid], ref, rtol=0, atol=1e-4)
            shift = int(batch.image_token_positions[b][0][0] - single.image_token_positions[0][0][0])
            for p_batch, p_single in zip(batch.image_token_positions[b], single.image_token_positions[0], strict=True):
                assert torch.equal(p_batch - shift, p_single)
            assert batch.geometries[b] == single.geometries[0]

    def test_checkpoint_round_trip(self, adapter: BackboneAdapter, tmp_path_factory: pytest.TempPathFactory) -> None:
        from ..tiny import save_tiny_checkpoint

        folder = save_tiny_checkpoint(adapter, tmp_path_factory.mktemp("ckpt"))
        loaded = type(adapter).from_pretrained(folder)
        assert loaded.spec == adapter.spec
        image = smooth_image(*self.model_sizes[1], seed=8)
        text = self.prompt(loaded)
        a = self.forward(adapter.load_model(seed=0), adapter.prepare([image], [text]).inputs)
        b = self.forward(loaded.load_model(folder), loaded.prepare([image], [text]).inputs)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)

    # --- frozen-LMM pipeline exactness ---------------------------------------------------
    def test_captured_attention_equals_eager(self, adapter: BackboneAdapter, model: Any) -> None:
        """Captured maps == the matching slice of eager ``output_attentions``; hidden states == stock."""
        from ..pipeline import FrozenLMM

        images = [smooth_image(h, w, seed=20 + i) for i, (h, w) in enumerate(self.model_sizes)]
        batch = adapter.prepare([images], [self.prompt(adapter, num_images=len(images))])
        out = FrozenLMM(model, adapter)(batch)[0]
        eager = adapter.load_model(seed=0, attn_implementation="eager")
        with torch.no_grad():
            ref = eager(**batch.inputs, output_attentions=True, output_hidden_states=True)
        assert len(ref.attentions) == len(out.layers) > 0
        q = out.query_positions
        for i, (geometry, positions) in enumerate(
            zip(batch.geometries[0], batch.image_token_positions[0], strict=True)
        ):
            for slot, layer in enumerate(out.layers):
                want = ref.attentions[layer][0][:, q][:, :, positions].float()  # [H, Q, K], separators included
                torch.testing.assert_close(out.image_attention[i][slot], want, rtol=0, atol=1e-5)
                for v, got in enumerate(out.view_attention[i]):
                    expected = adapter.tokens_to_views(want, geometry)[v]
                    torch.testing.assert_close(got[slot], expected, rtol=0, atol=1e-5, msg=f"view {v}")
        assert out.hidden_states is not None
        stock = torch.stack([h[0, q] for h in ref.hidden_states])
        torch.testing.assert_close(out.hidden_states.float(), stock.float(), rtol=0, atol=1e-5)

    def test_capture_follows_the_models_own_scaling(self, adapter: BackboneAdapter) -> None:
        """With a non-default softmax scale on every decoder attention module (as some backbones
        configure), captured maps still equal eager: the capture takes the model's own scale."""
        from ..pipeline import FrozenLMM

        def rescaled(model: Any) -> Any:
            touched = 0
            for module in model.get_decoder().modules():
                if isinstance(getattr(module, "scaling", None), float):
                    module.scaling = module.scaling * 1.7
                    touched += 1
            assert touched, "no decoder attention module has a float `scaling` attribute to vary"
            return model

        model = rescaled(adapter.load_model(seed=0))
        image = smooth_image(*self.model_sizes[0], seed=21)
        batch = adapter.prepare([image], [self.prompt(adapter)])
        out = FrozenLMM(model, adapter)(batch, hidden_states=False)[0]
        eager = rescaled(adapter.load_model(seed=0, attn_implementation="eager"))
        with torch.no_grad():
            ref = eager(**batch.inputs, output_attentions=True)
        q, positions = out.query_positions, batch.image_token_positions[0][0]
        for slot, layer in enumerate(out.layers):
            want = ref.attentions[layer][0][:, q][:, :, positions].float()
            torch.testing.assert_close(out.image_attention[0][slot], want, rtol=0, atol=1e-5)

    @pytest.mark.parametrize("padding_side", ["right", "left"])
    def test_pipeline_batch_equals_samples(self, adapter: BackboneAdapter, model: Any, padding_side: str) -> None:
        """A two-image and a one-image sample batched (either padding side) == each on its own."""
        from ..adapter import concat_batches
        from ..pipeline import FrozenLMM

        lmm = FrozenLMM(model, adapter)
        first = [smooth_image(h, w, seed=30 + i) for i, (h, w) in enumerate(self.model_sizes)]
        second = [smooth_image(*self.model_sizes[-1], seed=40)]
        samples = []
        for i, images in enumerate((first, second)):
            text = adapter.format_prompt(self.prompt_text, num_images=len(images), answer="a cat" + " now" * i)
            samples.append(sample_from_batch(adapter.prepare([images], [text])))
        singles = [adapter.normalize(s) for s in samples]
        batched = lmm(
            concat_batches(singles, adapter.pad_token_id, padding_side, adapter.sequence_keys, adapter.image_stack_keys)
        )
        for single, got in zip(singles, batched, strict=True):
            want = lmm(single)[0]
            assert got.num_queries == want.num_queries
            assert torch.equal(got.query_token_ids, want.query_token_ids)
            assert len(got.view_attention) == len(want.view_attention) == single.num_images[0]
            for got_views, want_views in zip(got.view_attention, want.view_attention, strict=True):
                assert len(got_views) == len(want_views)
                for a, b in zip(got_views, want_views, strict=True):
                    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
            assert got.hidden_states is not None and want.hidden_states is not None
            torch.testing.assert_close(got.hidden_states, want.hidden_states, rtol=0, atol=1e-4)
            assert got.geometries == want.geometries

    def test_shared_prefix_equals_full_forward(self, adapter: BackboneAdapter, model: Any) -> None:
        """Texts about the same images, run over one shared prefix (vision tower and LLM once, into a
        KV cache) and then as batched continuations, give each sample's eager maps (every view) and
        stock hidden states (fp32, 1e-5), with the answers as queries: two images in chunks of two
        texts, one image all at once. An adapter whose image tokens attend to later text
        (``image_sees_later_text``, a prefix-LM) must not share, and runs every sample in full."""
        from ..extract.prefix import run_shared_prefix
        from ..phrases import find_phrase
        from ..pipeline import FrozenLMM

        lmm = FrozenLMM(model, adapter)
        eager = adapter.load_model(seed=0, attn_implementation="eager")
        answers = ("a cat", "the red cat on the left", "a small cat on a chair near the window")
        images = [smooth_image(h, w, seed=50 + i) for i, (h, w) in enumerate(self.model_sizes)]
        tokenizer = adapter.processor.tokenizer
        for shown, batch_size in ((images, 2), (images[:1], None)):
            prompts = [adapter.format_prompt(self.prompt_text, num_images=len(shown), answer=a) for a in answers]
            samples = [adapter.prepare([shown], [p]) for p in prompts]
            queries = [find_phrase(tokenizer, s.input_ids[0], a) for s, a in zip(samples, answers, strict=True)]
            outs = run_shared_prefix(lmm, samples, queries=queries, batch_size=batch_size)
            assert len(outs) == len(samples)
            image_end = int(samples[0].image_token_positions[0][-1][-1]) + 1
            for sample, out in zip(samples, outs, strict=True):
                shared = out.timings.get("prefix_tokens", 0)
                if adapter.image_sees_later_text:  # a prefix-LM: the image's states depend on each text
                    assert shared == 0, "an image prefix was shared although the image attends to later text"
                else:
                    assert shared >= image_end, f"the image prefix was not shared (prefix of {shared} tokens)"
                with torch.no_grad():
                    ref = eager(**sample.inputs, output_attentions=True, output_hidden_states=True)
                q = out.query_positions
                for i, (geometry, positions) in enumerate(
                    zip(sample.geometries[0], sample.image_token_positions[0], strict=True)
                ):
                    for slot, layer in enumerate(out.layers):
                        want = ref.attentions[layer][0][:, q][:, :, positions].float()
                        torch.testing.assert_close(out.image_attention[i][slot], want, rtol=0, atol=1e-5)
                        for v, got in enumerate(out.view_attention[i]):
                            expected = adapter.tokens_to_views(want, geometry)[v]
                            torch.testing.assert_close(got[slot], expected, rtol=0, atol=1e-5, msg=f"view {v}")
                assert out.hidden_states is not None
                stock = torch.stack([h[0, q] for h in ref.hidden_states])
                torch.testing.assert_close(out.hidden_states.float(), stock.float(), rtol=0, atol=1e-5)
