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
from vlm_adapters.inspect_cache import CACHE_ENV, InspectEntry, code_key, code_stamp
from vlm_adapters.registry import default_registry, list_adapters, reset_registry

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


def remembered(name: str | None, model: str | None, size: tuple[int, int] | None) -> dict[str, object]:
    return inspect_data(name, model, size, remember=True)


@pytest.mark.parametrize("name", ADAPTERS)
def test_a_remembered_answer_equals_a_fresh_one(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same size (stored geometry) and a new size (geometry from the spec read back through its kind)."""
    import vlm_adapters.checkpoints

    fresh = inspect_data(name, None, WIDE)
    assert remembered(name, None, WIDE) == fresh  # computed, then stored
    entry = InspectEntry.for_command(name, None)
    assert entry is not None and entry.load() is not None

    def no_model(*args: object) -> None:
        raise AssertionError("a remembered answer must not bind the adapter")

    monkeypatch.setattr(vlm_adapters.checkpoints, "bind_adapter", no_model)
    assert remembered(name, None, WIDE) == fresh
    assert remembered(name, None, None) == {k: v for k, v in fresh.items() if k != "geometry"}
    tall = remembered(name, None, TALL)
    monkeypatch.undo()
    assert tall == inspect_data(name, None, TALL)


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
    """Even when the edit keeps the file's size and modification time (``cp -p``, ``rsync -a``)."""
    folder = Path(shutil.copytree(tiny_checkpoint, tmp_path / "ckpt"))
    before = remembered(None, str(folder), None)
    layers = before["config"]["layers"]  # type: ignore[index]
    config_file = folder / "config.json"
    text, st = config_file.read_text(), config_file.stat()
    config = json.loads(text)
    config["text_config"]["num_hidden_layers"] = layers + 1 if layers < 9 else layers - 1
    edited = json.dumps(config, indent=2, sort_keys=True)
    config["text_config"]["num_hidden_layers"] = layers  # the same layout, the old value: the same size
    assert len(edited) == len(json.dumps(config, indent=2, sort_keys=True))
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True))
    assert remembered(None, str(folder), None) == before  # rewritten, nothing changed: still right
    st = config_file.stat()
    config_file.write_text(edited)
    os.utime(config_file, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert config_file.stat().st_size == st.st_size and config_file.stat().st_mtime_ns == st.st_mtime_ns
    after = remembered(None, str(folder), None)
    assert after["config"]["layers"] == json.loads(edited)["text_config"]["num_hidden_layers"]  # type: ignore[index]
    assert after == inspect_data(None, str(folder), None)


def test_the_model_is_shown_as_the_user_wrote_it(tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two spellings of one folder share an entry; each answer names the folder as it was given."""
    absolute = remembered(None, str(tiny_checkpoint), None)
    monkeypatch.chdir(tiny_checkpoint.parent)
    spelled = f"./{tiny_checkpoint.name}"
    relative = remembered(None, spelled, None)
    first, second = InspectEntry.for_command(None, str(tiny_checkpoint)), InspectEntry.for_command(None, spelled)
    assert first is not None and second is not None and first.path == second.path
    assert absolute["model"] == str(tiny_checkpoint) and relative["model"] == spelled
    assert {k: v for k, v in absolute.items() if k != "model"} == {k: v for k, v in relative.items() if k != "model"}


def test_hub_ids_are_not_remembered(own_inspect_cache: Path) -> None:
    assert InspectEntry.for_command(None, "org/some-model") is None
    assert InspectEntry.for_command("qwen2_5_vl", "org/some-model") is None


@pytest.mark.parametrize(
    "content",
    ['{"key": {"format"', '{"key": {}, "data": {"adapter": "x"}}', "[1, 2]", '{"data": null, "geometries": []}'],
)
def test_a_damaged_entry_is_computed_again(content: str) -> None:
    """Cut short (a full disk), or whole JSON of the wrong shape: a miss, never a crash."""
    fresh = inspect_data("deepseek_vl", None, (480, 640))
    entry = InspectEntry.for_command("deepseek_vl", None)
    assert entry is not None
    entry.path.parent.mkdir(parents=True, exist_ok=True)
    entry.path.write_text(content)
    assert remembered("deepseek_vl", None, (480, 640)) == fresh
    assert entry.load() is not None


def test_an_unwritable_cache_only_costs_speed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(CACHE_ENV, str(blocker / "cache"))  # below a file: cannot be created
    assert remembered("deepseek_vl", None, (480, 640)) == inspect_data("deepseek_vl", None, (480, 640))


def test_no_cache_neither_reads_nor_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    assert main(["inspect", "deepseek_vl", "--no-cache"]) == 0
    assert "layers" in capsys.readouterr().out and not (tmp_path / "cache").exists()
    assert main(["inspect", "deepseek_vl"]) == 0
    assert len(list((tmp_path / "cache" / "inspect").glob("*.json"))) == 1


def a_plugin_package(root: Path, name: str) -> Path:
    """A plugin package with one hook module, importable from ``root``."""
    package = root / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    module = package / "hooks.py"
    module.write_text("from vlm_adapters.hookspecs import hookimpl\n\nLIMIT = 1\n")
    return module


def test_an_edited_plugin_is_asked_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Any registered plugin's code is in the key (its hooks may pick or refuse an adapter), by
    content: an edit that keeps the size changes it too."""
    import importlib

    module = a_plugin_package(tmp_path, "some_inspect_plugin")
    monkeypatch.syspath_prepend(str(tmp_path))
    reset_registry()
    try:
        info = default_registry().register_plugin(importlib.import_module("some_inspect_plugin.hooks"), name="some")
        assert info.status == "loaded"
        before = InspectEntry.for_command("deepseek_vl", None)
        module.write_text(module.read_text().replace("LIMIT = 1", "LIMIT = 2"))
        after = InspectEntry.for_command("deepseek_vl", None)
        assert before is not None and after is not None and before.path != after.path
        assert "some_inspect_plugin" in [c[0] for c in code_key()["code"]]
    finally:
        reset_registry()


def test_editor_leftovers_do_not_break_the_stamp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An editor's lock file is a dangling symlink named ``.#name.py``: skipped, like every dot-file."""
    module = a_plugin_package(tmp_path, "locked_plugin_pkg")
    (module.parent / ".#hooks.py").symlink_to("user@host.1234")
    monkeypatch.syspath_prepend(str(tmp_path))
    stamp = code_stamp("locked_plugin_pkg")
    assert [name for name, _ in stamp[1]] == ["__init__.py", "hooks.py"]
    assert "locked_plugin_pkg" not in sys.modules  # stamped without importing it


def test_the_key_covers_every_built_in_package_and_the_libraries() -> None:
    key = code_key()
    packages = [c[0] for c in key["code"]]
    for package in ("vlm_adapters", "adapters_qwen", "adapters_deepseek", "adapters_llava", "adapters_idefics3"):
        assert package in packages
    assert key["versions"]["transformers"] and key["versions"]["vlm-adapters"] and key["versions"]["torch"]
