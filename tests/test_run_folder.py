"""The run folder: atomic summary, image folders that appear whole or not at all, safe --overwrite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vlm_adapters.errors import OutputFolderError
from vlm_adapters.run_folder import RunFolder

ARGS = {"text": "a red circle", "images": ["/x.png"]}


def test_an_image_folder_appears_only_when_complete(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path / "out", ARGS)
    folder.check()
    folder.open()
    with pytest.raises(RuntimeError), folder.image_folder("000_x") as tmp:
        (tmp / "overlay_all.png").write_bytes(b"half")
        assert tmp.name.startswith(".") and not (tmp_path / "out" / "000_x").exists()
        raise RuntimeError("the forward failed")
    assert list((tmp_path / "out").iterdir()) == []  # nothing half-written
    with folder.image_folder("000_x") as tmp:
        (tmp / "image.json").write_text(json.dumps({"index": 0, "status": "ok"}))
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["000_x"]
    assert folder.finished() == {0: {"index": 0, "status": "ok"}}


def test_summary_is_replaced_atomically_and_read_back_for_resume(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = RunFolder(out, ARGS)
    first.open()
    first.write_summary({"arguments": ARGS, "images": []})
    assert sorted(p.name for p in out.iterdir()) == ["summary.json"]  # no temporary file left
    assert RunFolder(out, ARGS, resume=True).check() == {}
    with pytest.raises(OutputFolderError, match="text: 'a red circle' -> 'a blue square'"):
        RunFolder(out, {**ARGS, "text": "a blue square"}, resume=True).check()


def test_overwrite_replaces_a_run_and_nothing_else(tmp_path: Path) -> None:
    run = tmp_path / "run"
    RunFolder(run, ARGS).open()
    RunFolder(run, ARGS).write_summary({"arguments": ARGS})
    (run / "000_x").mkdir()
    again = RunFolder(run, ARGS, overwrite=True)
    again.check()
    again.open()
    assert list(run.iterdir()) == []
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"jpeg")
    with pytest.raises(OutputFolderError, match="does not hold a vlm-adapters run"):
        RunFolder(other, ARGS, overwrite=True).check()
    assert (other / "holiday.jpg").exists()


def test_a_run_stopped_before_its_first_image_leaves_no_folder(tmp_path: Path) -> None:
    out = tmp_path / "new" / "out"
    folder = RunFolder(out, ARGS)
    folder.open()
    folder.write_summary({"arguments": ARGS, "status": "interrupted"})
    assert folder.discard_if_empty() and not out.exists()
