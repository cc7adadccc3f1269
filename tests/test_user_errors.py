"""Mistakes a user makes get one ``Error:`` line that says what would work, never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from media import Clip, write_clip
from services import catalog_env
from tiny_models import write_tiny_compact
from typer.testing import CliRunner

from catalog import Catalog, stop_embedded
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
        extra = ["--yes", "--for-older-footage"] if action == "downgrade" else []
        code, output = _error(env, "db", action, "9999", *extra)
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


def test_an_empty_file_given_to_render(tmp_path: Path) -> None:
    empty = tmp_path / "zero.mp4"
    empty.write_bytes(b"")
    model = write_tiny_compact(tmp_path / "t.pth")
    code, output = _error(
        {"FOOTAGE_HOME": str(tmp_path / "home")}, "render", str(empty), "--to", "2x", "-m", str(model)
    )
    assert code == 1
    assert output == f"Error: {empty}: cannot open: empty file (0 bytes)\n"  # no errno, said once


def test_cancelling_a_job_that_is_not_there(catalog: Catalog, tmp_path: Path) -> None:
    env = catalog_env(catalog, tmp_path / "home")
    code, output = _error(env, "jobs", "cancel", "9999")
    assert code == 5
    assert output == "Error: no job 9999 in the queue; `footage jobs` lists them\n"


def test_upscaling_a_file_that_failed_to_index(catalog: Catalog, tiny_clip: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.mov"
    broken.write_bytes(b"\x00" * 100)
    env = catalog_env(catalog, tmp_path / "home", FOOTAGE_CLIP_MODEL=tiny_clip)
    assert runner.invoke(app, ["index", str(broken)], env=env).exit_code == 1
    model = write_tiny_compact(tmp_path / "t.pth")
    code, output = _error(env, "upscale", str(broken), "--to", "2x", "-m", str(model))
    assert code == 1
    assert output.startswith(f"Error: {broken} could not be indexed (")
    assert "is error" not in output


def test_watching_a_folder_that_is_not_there(tmp_path: Path) -> None:
    code, output = _error({"FOOTAGE_HOME": str(tmp_path / "home")}, "watch", str(tmp_path / "Movies"))
    assert code == 2
    assert output.startswith(f"Error: {tmp_path / 'Movies'} does not exist: name the folder your footage is in")


def test_nothing_to_index_says_so_without_an_empty_table(catalog: Catalog, tiny_clip: str, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    env = catalog_env(catalog, tmp_path / "home", FOOTAGE_CLIP_MODEL=tiny_clip)
    result = runner.invoke(app, ["index", str(tmp_path / "empty")], env=env)
    assert result.exit_code == 0
    assert result.stdout.strip().splitlines()[-1] == "No video files found."
    assert "┏" not in result.stdout


def test_ctrl_c_during_a_render_says_what_happened(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    from polling import wait_for

    master = write_clip(tmp_path / "long.mov", Clip(width=160, height=90, shots=(6.0, 6.0)))
    model = write_tiny_compact(tmp_path / "t.pth")
    out = tmp_path / "out" / "long.up.mov"
    out.parent.mkdir()
    env = {**os.environ, "FOOTAGE_HOME": str(tmp_path / "home")}
    render = subprocess.Popen(
        [sys.executable, "-m", "cli", "render", str(master), "--to", "2x", "-m", str(model), "-o", str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: any(out.parent.glob(".*partial*")), timeout=120, interval=0.05)
        render.send_signal(signal.SIGINT)
        _, err = render.communicate(timeout=60)
    finally:
        if render.poll() is None:
            render.kill()
    assert render.returncode == 130, err
    assert "Stopped: the render was interrupted, and its partial file removed" in err
    assert "Traceback" not in err
    assert list(out.parent.iterdir()) == []  # no partial file, no output
