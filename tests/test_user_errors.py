"""Mistakes a user makes get one ``Error:`` line that says what would work, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from media import Clip, write_clip
from tiny_models import write_tiny_compact
from typer.testing import CliRunner

from catalog import stop_embedded
from cli.main import app

runner = CliRunner()


def _error(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env=env)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


@pytest.mark.parametrize("action", ["upgrade", "downgrade"])
def test_an_unknown_schema_revision(tmp_path: Path, action: str) -> None:
    env = {"FOOTAGE_HOME": str(tmp_path / "home")}
    try:
        code, output = _error(env, "db", action, "9999", *(["--yes"] if action == "downgrade" else []))
    finally:
        stop_embedded(tmp_path / "home" / "pgdata")
    assert code == 2
    assert output.startswith("Error: no schema revision '9999': footage knows 0001, ")


@pytest.fixture
def master(tmp_path: Path) -> Path:
    return write_clip(tmp_path / "m.mov", Clip(width=64, height=36, shots=(0.4,)))


def test_an_unknown_device(tmp_path: Path, master: Path, tiny_clip: str) -> None:
    env = {"FOOTAGE_DEVICE": "banana", "FOOTAGE_CLIP_MODEL": tiny_clip, "FOOTAGE_HOME": str(tmp_path / "home")}
    for args in (
        ["search", "a red circle"],
        ["render", str(master), "--to", "2x", "-m", str(write_tiny_compact(tmp_path / "t.pth"))],
    ):
        code, output = _error(env, *args)
        assert code == 2, output
        assert output.startswith("Error: FOOTAGE_DEVICE='banana' is not a device: use cpu, cuda or cuda:N"), output


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_asked_for_where_there_is_none(tmp_path: Path, master: Path) -> None:
    env = {"FOOTAGE_DEVICE": "cuda", "FOOTAGE_HOME": str(tmp_path / "home")}
    model = write_tiny_compact(tmp_path / "t.pth")
    code, output = _error(env, "render", str(master), "--to", "2x", "-m", str(model), "-o", str(tmp_path / "o.mov"))
    assert code == 2
    assert output.startswith("Error: FOOTAGE_DEVICE=cuda but this machine has no CUDA device")
    assert not (tmp_path / "o.mov").exists()


def test_prores_in_mp4(tmp_path: Path, master: Path) -> None:
    model = write_tiny_compact(tmp_path / "t.pth")
    out = tmp_path / "p.mp4"
    code, output = _error(
        {"FOOTAGE_HOME": str(tmp_path / "home")},
        *("render", str(master), "--to", "2x", "-m", str(model), "--codec", "prores", "-o", str(out)),
    )
    assert code == 2
    assert output == "Error: prores does not go in .mp4 files: name the output p.mov, or choose another --codec\n"
    assert not out.exists()
