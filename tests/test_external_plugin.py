"""A third-party plugin, installed as its own distribution, is discovered like the built-ins.

The example plugin (examples/vlm-adapters-paligemma) is copied, installed with pip into a throwaway
folder, and used from fresh processes with that folder on the path: exactly how a user's
environment would see it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "examples" / "vlm-adapters-paligemma"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("plugin")
    source = work / "src"
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = work / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    return target


def run(site: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, cwd=cwd)


def test_listed_with_its_distribution(site: Path) -> None:
    done = run(site, "-m", "vlm_adapters.cli", "list", "--json")
    assert done.returncode == 0, done.stderr
    rows = {r["name"]: r for r in json.loads(done.stdout)}
    assert rows["paligemma"]["distribution"] == "vlm-adapters-paligemma"
    assert rows["paligemma"]["version"] == "0.1.0" and rows["paligemma"]["status"] == "loaded"
    assert rows["qwen2_vl"]["distribution"] == "vlm-adapters"  # built-ins unaffected


def test_resolved_by_model_type(site: Path) -> None:
    code = (
        "from transformers import PaliGemmaConfig; import vlm_adapters;"
        "print(vlm_adapters.adapter_for(PaliGemmaConfig()).__module__)"
    )
    done = run(site, "-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "vlm_adapters_paligemma.adapter"


def test_passes_its_tests_and_the_contract_kit(site: Path, tmp_path: Path) -> None:
    tests = tmp_path / "tests"
    shutil.copytree(PLUGIN / "tests", tests)
    done = run(site, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests), cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary) and not re.search(r"\d+ (failed|error)", summary), summary
