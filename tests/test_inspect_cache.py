"""``inspect`` answers again from its cache without importing torch or transformers, says the same
as a fresh answer, and asks afresh whenever the checkpoint or the code behind it changes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vlm_adapters.cli import inspect_data, main
from vlm_adapters.inspect_cache import CACHE_ENV, InspectEntry, adapter_code_stamp, code_stamp
from vlm_adapters.registry import list_adapters

ADAPTERS = [a.name for a in list_adapters() if a.status == "loaded"]
WIDE, TALL = (300, 1200), (1100, 500)

PROBE = """
import json, sys
from vlm_adapters.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "heavy": sorted(m for m in ("torch", "transformers") if m in sys.modules)}))
"""


def probe(cache: Path, *args: str) -> tuple[dict[str, object], dict[str, object]]:
    """``inspect ARGS --json`` in a fresh process: its answer, and whether torch or transformers loaded."""
    env = {**os.environ, CACHE_ENV: str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "inspect", *args, "--json"], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr
    *answer, status = done.stdout.strip().splitlines()
    return json.loads("\n".join(answer)), json.loads(status)


@pytest.mark.parametrize("name", ADAPTERS)
def test_a_remembered_answer_equals_a_fresh_one(name: str) -> None:
    """Same size (stored geometry) and a new size (geometry from the spec read back through its kind)."""
    fresh = inspect_data(name, None, WIDE, remember=False)
    assert inspect_data(name, None, WIDE) == fresh  # computed, then stored
    entry = InspectEntry.for_command(name, None)
    assert entry is not None and entry.load() is not None
    assert inspect_data(name, None, WIDE) == fresh  # stored
    assert inspect_data(name, None, TALL) == inspect_data(name, None, TALL, remember=False)
    assert inspect_data(name, None, None) == {k: v for k, v in fresh.items() if k != "geometry"}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "first", "then"),
    [
        ("deepseek_vl", "480x640", "480x640"),
        ("qwen2_5_vl", "427x640", "300x1200"),
        ("llava_next", "300x1200", "300x1200"),
    ],
)
def test_asking_again_imports_neither_torch_nor_transformers(name: str, first: str, then: str, tmp_path: Path) -> None:
    """The second process answers from the cache alone. ``qwen2_5_vl`` asks for a new size: its core
    kind computes the geometry from the stored spec; ``llava_next``'s kind reuses transformers helpers
    for geometry, so only a size asked before is answered without them."""
    answer, status = probe(tmp_path, name, "--image-size", first)
    assert status == {"code": 0, "heavy": ["torch", "transformers"]}
    again, status = probe(tmp_path, name, "--image-size", then)
    assert status == {"code": 0, "heavy": []}
    if first == then:
        assert again == answer
    else:
        assert again["spec"] == answer["spec"] and again["config"] == answer["config"]
        assert again == inspect_data(name, None, tuple(int(v) for v in then.split("x")), remember=False)  # type: ignore[arg-type]


def test_an_edited_checkpoint_is_read_again(tiny_checkpoint: Path, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(tiny_checkpoint, tmp_path / "ckpt"))
    before = inspect_data(None, str(folder), None)
    config_file = folder / "config.json"
    config = json.loads(config_file.read_text())
    config["text_config"]["num_hidden_layers"] = before["config"]["layers"] + 1
    config_file.write_text(json.dumps(config))
    after = inspect_data(None, str(folder), None)
    assert after["config"]["layers"] == before["config"]["layers"] + 1
    assert after == inspect_data(None, str(folder), None, remember=False)


def test_the_model_is_shown_as_the_user_wrote_it(tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two spellings of one folder share an entry; each answer names the folder as it was given."""
    absolute = inspect_data(None, str(tiny_checkpoint), None)
    monkeypatch.chdir(tiny_checkpoint.parent)
    relative = inspect_data(None, f"./{tiny_checkpoint.name}", None)
    assert absolute["model"] == str(tiny_checkpoint) and relative["model"] == f"./{tiny_checkpoint.name}"
    assert {k: v for k, v in absolute.items() if k != "model"} == {k: v for k, v in relative.items() if k != "model"}


def test_hub_ids_are_not_remembered() -> None:
    assert InspectEntry.for_command(None, "org/some-model") is None
    assert InspectEntry.for_command("qwen2_5_vl", None) is not None


def test_a_damaged_entry_is_computed_again() -> None:
    fresh = inspect_data("deepseek_vl", None, None, remember=False)
    entry = InspectEntry.for_command("deepseek_vl", None)
    assert entry is not None
    entry.path.parent.mkdir(parents=True, exist_ok=True)
    entry.path.write_text('{"key": {"format"')  # cut short, as by a full disk
    assert inspect_data("deepseek_vl", None, None) == fresh
    assert entry.load() is not None


def test_an_unwritable_cache_only_costs_speed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(CACHE_ENV, str(blocker / "cache"))  # below a file: cannot be created
    assert inspect_data("deepseek_vl", None, (480, 640)) == inspect_data(
        "deepseek_vl", None, (480, 640), remember=False
    )


def test_no_cache_neither_reads_nor_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    assert main(["inspect", "deepseek_vl", "--no-cache"]) == 0
    assert "layers" in capsys.readouterr().out and not (tmp_path / "cache").exists()
    assert main(["inspect", "deepseek_vl"]) == 0
    assert len(list((tmp_path / "cache" / "inspect").glob("*.json"))) == 1


def test_edited_source_changes_the_code_stamp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An editable plugin install that changes its code is not answered from what the old code said."""
    package = tmp_path / "some_plugin_pkg"
    package.mkdir()
    module = package / "__init__.py"
    module.write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = code_stamp("some_plugin_pkg")
    module.write_text("X = 22\n")
    assert code_stamp("some_plugin_pkg") != before
    assert "some_plugin_pkg" not in sys.modules  # stamped without importing it


def test_the_code_stamp_covers_the_adapters_own_package() -> None:
    stamp = adapter_code_stamp("llava_next")
    assert stamp is not None
    versions, core, plugin = stamp
    assert versions["transformers"] and versions["vlm-adapters"]
    assert any(path.endswith(os.path.join("vlm_adapters", "spec.py")) for path, *_ in core)
    assert any(path.endswith(os.path.join("adapters_llava", "layout.py")) for path, *_ in plugin)
    assert adapter_code_stamp("no_such_adapter") is None
