"""``extract``: a manifest into shards that hold what the per-sample forward gives, refusals recorded.

The reference for every stored tensor is the pipeline's own per-sample forward on the stock
processor's batch (``FrozenLMM`` on ``prepare``), with the phrase tokens found by the core's
token matching (``phrase_mask_ids``), not by the extraction's offsets.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from vlm_adapters.extract import SampleError, extract
from vlm_adapters.extract.job import DEFAULT_PROMPT
from vlm_adapters.features import ExtractedFeatures, FeaturesError
from vlm_adapters.phrases import find_phrase, phrase_mask_ids
from vlm_adapters.pipeline import FrozenLMM
from vlm_adapters.testing import sample_from_batch, smooth_image

SIZES = [(96, 128), (120, 90), (80, 80)]


@pytest.fixture(scope="module")
def lmm() -> FrozenLMM:
    return FrozenLMM.from_tiny("qwen2_5_vl")


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    for i, (h, w) in enumerate(SIZES):
        smooth_image(h, w, seed=i).save(folder / f"img{i}.png")
    (folder / "broken.png").write_bytes(b"this is not a png")
    return folder


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def token_ids_for(lmm: FrozenLMM, text: str) -> int:
    return len(lmm.adapter.processor.tokenizer(text, add_special_tokens=False)["input_ids"])


def reference(lmm: FrozenLMM, image: Path, text: str, phrases: Any) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Phrase maps per view and phrase hidden states of one sample, from its own full forward."""
    tokenizer = lmm.adapter.processor.tokenizer
    batch = lmm.prepare([Image.open(image).convert("RGB")], [lmm.adapter.format_prompt(DEFAULT_PROMPT, answer=text)])
    ids = batch.input_ids[0]
    if phrases and all(isinstance(p, int) for p in phrases):
        mask_ids = torch.full_like(ids, -1)
        mask_ids[find_phrase(tokenizer, ids, text)] = torch.tensor(phrases)
    else:
        strings = [p if isinstance(p, str) else text[p[0] : p[1]] for p in (phrases or [text])]
        mask_ids = phrase_mask_ids(tokenizer, ids, strings)
    batch.mask_ids = mask_ids[None]
    out = lmm(batch, queries=[(mask_ids >= 0).nonzero().flatten()])[0]
    assert out.hidden_states is not None
    return out.phrase_maps_per_view(), out.hidden_states


def test_shards_hold_the_per_sample_forward(lmm: FrozenLMM, images: Path, tmp_path: Path) -> None:
    """Groups of one image (shared prefix), lone samples, all three phrase forms: stored maps and
    hidden states equal each sample's own forward (fp32 storage, 1e-5), in manifest order."""
    per_token = "the cat on the left"
    n = token_ids_for(lmm, per_token)
    rows = [
        {"id": "a0", "image": "img0.png", "text": "a red cat and a blue dog", "phrases": ["red cat", "blue dog"]},
        {"id": "a1", "image": "img0.png", "text": "the red cat on the left", "phrases": [[4, 11]]},
        {"id": "a2", "image": "img0.png", "text": per_token, "phrases": [0] + [-1] * (n - 2) + [1]},
        {"id": "b0", "image": "img1.png", "text": "a small bird"},
        {"id": "c0", "image": "img2.png", "text": "two dogs near a tree", "phrases": ["dogs", "tree"]},
        {"id": "c1", "image": "img2.png", "text": "the tree", "phrases": ["tree"]},
        {"id": "a3", "image": "img0.png", "text": "the blue dog", "phrases": ["blue dog"]},
    ]
    manifest = write_jsonl(images / "manifest.jsonl", rows)
    summary = extract(manifest, tmp_path / "out", lmm, dtype="float32", batch_size=2, progress=False)
    assert (summary.ok, summary.errors, summary.merged) == (len(rows), 0, True)
    features = ExtractedFeatures(tmp_path / "out")
    assert [features[i]["id"] for i in range(len(features))] == [r["id"] for r in rows]
    for row in rows:
        sample = features.by_id(row["id"])
        maps, hidden = reference(lmm, images / row["image"], row["text"], row.get("phrases"))
        assert len(sample["maps"]) == 1 and len(sample["maps"][0]) == len(maps)
        for got, want in zip(sample["maps"][0], maps, strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
        torch.testing.assert_close(sample["hidden"], hidden, rtol=0, atol=1e-5)
        assert sample["object_ids"].max() + 1 == sample["objects"] == maps[0].shape[0]
        assert sample["geometries"][0].token_grid == tuple(maps[0].shape[-2:])
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["status"] == "complete" and run["counts"] == {"ok": len(rows), "error": 0}
    assert run["backbone"] == "qwen2_5_vl" and run["spec"]["kind"] == "dynamic" and "transformers" in run["versions"]


def test_bad_samples_are_recorded_and_skipped(lmm: FrozenLMM, images: Path, tmp_path: Path) -> None:
    rows = [
        {"id": "ok0", "image": "img0.png", "text": "a red cat"},
        {"id": "missing", "image": "nowhere.png", "text": "a red cat"},
        {"id": "broken", "image": "broken.png", "text": "a red cat"},
        "{not json",
        {"id": "no-phrase", "image": "img0.png", "text": "a red cat", "phrases": ["blue dog"]},
        {"id": "no-text", "image": "img1.png", "text": ""},
        {"id": "overlap", "image": "img1.png", "text": "a red cat", "phrases": ["red cat", "cat"]},
        {"id": "bad-ids", "image": "img1.png", "text": "a red cat", "phrases": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]},
        {"id": "ok1", "image": "img1.png", "text": "a small bird", "phrases": ["bird"]},
    ]
    manifest = write_jsonl(images / "bad.jsonl", rows)
    summary = extract(manifest, tmp_path / "out", lmm, progress=False)
    assert (summary.ok, summary.errors) == (2, 7)
    records = [json.loads(line) for line in (tmp_path / "out" / "index.jsonl").read_text().splitlines()]
    assert [r["position"] for r in records] == list(range(len(rows)))
    assert [r["status"] for r in records] == ["ok"] + ["error"] * 7 + ["ok"]
    problems = {r["id"]: r["error"] for r in records if r["status"] == "error"}
    assert set(problems) == {"missing", "broken", "#3", "no-phrase", "no-text", "overlap", "bad-ids"}
    for error in problems.values():
        assert error["type"] == SampleError.__name__
        assert error["found"] and error["expected"] and error["fix"]
    assert "not found" in problems["missing"]["problem"]
    assert "does not decode" in problems["broken"]["problem"]
    assert "not JSON" in problems["#3"]["problem"]
    assert "blue dog" in problems["no-phrase"]["found"]
    features = ExtractedFeatures(tmp_path / "out")
    assert len(features) == 2 and [e["id"] for e in features.errors] == list(problems)
    with pytest.raises(FeaturesError, match="refused"):
        features.by_id("broken")


def test_manifest_formats_and_sources_agree(lmm: FrozenLMM, images: Path, tmp_path: Path) -> None:
    """JSONL, CSV, Parquet, a datasets dataset (decoded images, also saved to disk) and Python dicts
    give the same shards."""
    import datasets
    import pandas as pd

    from vlm_adapters.extract import open_dataset_folder

    rows = [
        {"id": "x0", "image": "img0.png", "text": "a red cat and a dog", "phrases": ["red cat", "dog"]},
        {"id": "x1", "image": "img0.png", "text": "the dog", "phrases": ["dog"]},
        {"id": "x2", "image": "img1.png", "text": "a bird", "phrases": ["bird"]},
    ]
    pd.DataFrame([{**r, "phrases": json.dumps(r["phrases"])} for r in rows]).to_csv(images / "rows.csv", index=False)
    pd.DataFrame(rows).to_parquet(images / "rows.parquet")
    decoded = [{**r, "image": Image.open(images / r["image"]), "image_id": r["image"]} for r in rows]
    dataset = datasets.Dataset.from_list(decoded)
    dataset.save_to_disk(str(tmp_path / "saved"))
    sources = {
        "jsonl": write_jsonl(images / "rows.jsonl", rows),
        "csv": images / "rows.csv",
        "parquet": images / "rows.parquet",
        "python": decoded,
        "datasets": dataset,
        "saved": open_dataset_folder(tmp_path / "saved"),
    }
    want = None
    for name, source in sources.items():
        extract(source, tmp_path / f"out-{name}", lmm, dtype="float32", progress=False)
        got = ExtractedFeatures(tmp_path / f"out-{name}")
        assert [got[i]["id"] for i in range(len(got))] == ["x0", "x1", "x2"], name
        want = want or got
        for i in range(3):
            torch.testing.assert_close(got[i]["maps"][0][0], want[i]["maps"][0][0], rtol=0, atol=1e-5, msg=name)
            torch.testing.assert_close(got[i]["hidden"], want[i]["hidden"], rtol=0, atol=1e-5, msg=name)


def test_research_format_samples_from_python(lmm: FrozenLMM, images: Path, tmp_path: Path) -> None:
    """Dataset dicts that ``normalize`` accepts (ids, mask_ids, patch matrix, grid) extract like the manifest row."""
    text = "a red cat and a dog"
    image = Image.open(images / "img0.png").convert("RGB")
    batch = lmm.prepare([image], [lmm.adapter.format_prompt(DEFAULT_PROMPT, answer=text)])
    tokenizer = lmm.adapter.processor.tokenizer
    research = sample_from_batch(batch)
    research["mask_ids"] = phrase_mask_ids(tokenizer, batch.input_ids[0], ["red cat", "dog"])
    research["id"] = "r0"
    row = {"id": "m0", "image": str(images / "img0.png"), "text": text, "phrases": ["red cat", "dog"]}
    extract([research, row], tmp_path / "out", lmm, dtype="float32", progress=False)
    features = ExtractedFeatures(tmp_path / "out")
    a, b = features.by_id("r0"), features.by_id("m0")
    torch.testing.assert_close(a["maps"][0][0], b["maps"][0][0], rtol=0, atol=1e-5)
    torch.testing.assert_close(a["hidden"], b["hidden"], rtol=0, atol=1e-5)
    assert torch.equal(a["token_ids"], b["token_ids"])


def test_streams_the_manifest_into_bounded_shards(lmm: FrozenLMM, images: Path, tmp_path: Path) -> None:
    """Rows are pulled one at a time while shards land (the manifest is never held), and no shard
    grows past the bound by more than the one sample that crossed it."""
    out = tmp_path / "out"
    index = out / "index" / "r000.jsonl"
    written_when_pulled: list[int] = []

    def rows() -> Any:
        for i in range(12):
            written_when_pulled.append(len(index.read_text().splitlines()) if index.exists() else 0)
            yield {"id": f"s{i}", "image": str(images / f"img{i % 3}.png"), "text": "a red cat", "phrases": ["cat"]}

    bound = 2000
    extract(rows(), out, lmm, shard_bytes=bound, batch_size=1, progress=False)
    assert written_when_pulled[-1] >= 6, written_when_pulled  # on disk before the last row was read
    shards = sorted((out / "shards").glob("*.safetensors"))
    sizes = {}
    for line in (out / "index.jsonl").read_text().splitlines():
        record = json.loads(line)
        tensor_bytes = sum(
            torch.tensor([], dtype=getattr(torch, t["dtype"])).element_size() * torch.Size(t["shape"]).numel()
            for t in record["tensors"].values()
        )
        sizes.setdefault(record["shard"], []).append(tensor_bytes)
    assert len(shards) == len(sizes) > 2
    for per_sample in sizes.values():
        assert sum(per_sample) <= bound or len(per_sample) == 1, per_sample


def test_features_reader(lmm: FrozenLMM, images: Path, tmp_path: Path) -> None:
    text = "a red cat and a dog"
    rows = [{"id": f"f{i}", "image": f"img{i}.png", "text": text, "phrases": ["cat", "dog"]} for i in range(3)]
    extract(write_jsonl(images / "features.jsonl", rows), tmp_path / "out", lmm, progress=False)
    features = ExtractedFeatures(tmp_path / "out", keys=("maps",))
    sample = features[-1]
    assert sample["id"] == "f2" and "maps" in sample and "hidden" not in sample and "object_ids" not in sample
    assert sample["maps"][0][0].dtype == torch.float16 and sample["maps"][0][0].shape[0] == 2
    assert features.index_of("f1") == 1
    again = pickle.loads(pickle.dumps(features))  # DataLoader workers get a copy without open shards
    assert torch.equal(again[1]["maps"][0][0], features[1]["maps"][0][0])
    loader = torch.utils.data.DataLoader(ExtractedFeatures(tmp_path / "out"), batch_size=None)
    assert [s["id"] for s in loader] == ["f0", "f1", "f2"]
    with pytest.raises(FeaturesError, match="out of range"):
        features[3]
    with pytest.raises(FeaturesError, match="unknown feature keys"):
        ExtractedFeatures(tmp_path / "out", keys=("attention",))
    with pytest.raises(FeaturesError, match="no finished extraction"):
        ExtractedFeatures(tmp_path)
