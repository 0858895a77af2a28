"""The command line as a user meets it: fast help, list and version; inspect with the model's counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vlm_adapters import __version__
from vlm_adapters.cli import main
from vlm_adapters.registry import get_adapter

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m vlm_adapters ARGS`` in a fresh process, offline."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "vlm_adapters", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600
    )


def test_list_json_shows_built_ins_from_entry_points(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    for name, kind in [("qwen2_vl", "dynamic"), ("qwen2_5_vl", "dynamic"), ("deepseek_vl", "fixed")]:
        assert rows[name]["status"] == "loaded"
        assert rows[name]["spec_kind"] == kind == get_adapter(name).spec_kind
        assert rows[name]["distribution"] == "vlm-adapters" and rows[name]["version"]


def test_list_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "deepseek_vl" in out and "loaded" in out


STARTUP_PROBE = """
import sys
from vlm_adapters.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
heavy = sorted(m for m in sys.modules if m in ("torch", "transformers", "matplotlib")
               or (m.startswith("adapters_") and "." in m and not m.endswith(".plugin")))
print("HEAVY", heavy, file=sys.stderr)
"""


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["list"], ["list", "--json"], ["run", "--help"]])
def test_fast_commands_import_no_model_code(argv: list[str]) -> None:
    """help, version and list read entry points and refs only: no torch, no plugin module but the entry points.

    Every built-in plugin is loaded (they register adapters and spec kinds by ref); a plugin whose
    entry-point module imports transformers would bring torch back to ``list``.
    """
    env = {k: v for k, v in os.environ.items() if k != "VLM_ADAPTERS_PLUGINS"}
    done = subprocess.run(
        [sys.executable, "-c", STARTUP_PROBE.format(argv=argv)], capture_output=True, text=True, timeout=300, env=env
    )
    assert "gemma3" in done.stdout or argv[0] != "list", done.stdout
    assert "HEAVY []" in done.stderr, done.stderr


def test_version_and_module_entry_point() -> None:
    done = cli("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"vlm-adapters {__version__}"


def test_help_shows_defaults_without_markup() -> None:
    done = cli("run", "--help")
    assert done.returncode == 0
    text = done.stdout
    assert "(default: auto)" in text and "(default: turbo)" in text and "(default: runs/latest)" in text
    assert "default: None" not in text and "default: False" not in text
    assert "``" not in text and "`" not in text
    assert "WORD@N" in text and "START:END" in text


def test_inspect_gives_counts_spec_and_geometry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "qwen2_5_vl", "--image-size", "427x640", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    adapter = get_adapter("qwen2_5_vl").from_tiny()
    text = adapter.config.get_text_config()
    assert data["config"]["layers"] == text.num_hidden_layers
    assert data["config"]["heads"] == text.num_attention_heads
    assert data["config"]["model_type"] == "qwen2_5_vl"
    assert data["spec"]["kind"] == "dynamic" and data["spec"]["patch_size"] == adapter.spec.patch_size
    g = adapter.spec.geometry((427, 640))
    assert data["geometry"]["token_grid"] == list(g.token_grid)
    assert data["geometry"]["num_image_tokens"] == g.num_image_tokens


def test_inspect_text_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "deepseek_vl", "--image-size", "480x640"]) == 0
    out = capsys.readouterr().out
    assert "token_grid" in out and "padding" in out and "layers: 2" in out and "heads: 2" in out


def test_inspect_reads_the_checkpoints_own_config(tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No adapter name: it comes from the checkpoint's model_type; the counts come from its config."""
    from transformers import AutoConfig

    assert main(["inspect", "--model", str(tiny_checkpoint), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    text = AutoConfig.from_pretrained(tiny_checkpoint).get_text_config()
    assert data["adapter"] == "deepseek_vl" and data["model"] == str(tiny_checkpoint)
    assert (data["config"]["layers"], data["config"]["heads"]) == (text.num_hidden_layers, text.num_attention_heads)
    assert data["config"]["hidden_size"] == text.hidden_size


def test_unknown_adapter_is_a_clean_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "no_such_backbone"]) == 2
    err = capsys.readouterr().err
    assert "no adapter named 'no_such_backbone'" in err and len(err.strip().splitlines()) == 1


def test_remote_code_deepseek_checkpoint_is_refused_by_name(multi_modality_checkpoint: Path) -> None:
    done = cli("inspect", "--model", str(multi_modality_checkpoint))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "CheckpointError" in done.stderr and "multi_modality" in done.stderr
    assert "deepseek-community/deepseek-vl-1.3b-chat" in done.stderr
    assert "deepseek-community/deepseek-vl-7b-chat" in done.stderr


def test_debug_shows_the_traceback(multi_modality_checkpoint: Path) -> None:
    done = cli("inspect", "--model", str(multi_modality_checkpoint), "--debug")
    assert done.returncode != 0 and "Traceback" in done.stderr and "CheckpointError" in done.stderr


def test_list_shows_a_broken_plugin_and_keeps_going(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from vlm_adapters.registry import reset_registry

    info = tmp_path / "broken_thing-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-thing\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text("[vlm_adapters]\nbroken = no_such_module_here\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reset_registry()
    try:
        assert main(["list"]) == 0
        out = capsys.readouterr().out
        broken = next(line for line in out.splitlines() if line.startswith("broken"))
        assert "broken-thing" in broken and "failed: ModuleNotFoundError" in broken
        assert any(line.startswith("qwen2_vl") and line.rstrip().endswith("loaded") for line in out.splitlines())
    finally:
        reset_registry()


def test_remote_code_internvl_checkpoint_is_refused_by_name(tmp_path: Path) -> None:
    """The original InternVL repositories (``internvl_chat``, remote code) are named, with the ``-hf`` ones."""
    folder = tmp_path / "InternVL3-1B"
    folder.mkdir()
    config = {"model_type": "internvl_chat", "architectures": ["InternVLChatModel"], "auto_map": {}}
    (folder / "config.json").write_text(json.dumps(config))
    done = cli("inspect", "--model", str(folder))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "CheckpointError" in done.stderr and "internvl_chat" in done.stderr
    assert "OpenGVLab/InternVL3-1B-hf" in done.stderr
