"""What people read: file names are names (``clip (final) [v2].mp4`` is not markup), and no
path or model name is ever cut short, piped or in an 80-column terminal."""

from __future__ import annotations

import re
from pathlib import Path

from media import Clip, write_clip
from services import catalog_env
from typer.testing import CliRunner

from catalog import Catalog
from cli.main import app

runner = CliRunner()
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _out(env: dict[str, str], *args: str) -> str:
    result = runner.invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return _ANSI.sub("", result.stdout)


def test_bracketed_names_are_shown_as_they_are(catalog: Catalog, tiny_clip: str, tmp_path: Path) -> None:
    folder = tmp_path / "grade [" / "b] (v3)"  # a path with "[/b]" in it
    folder.mkdir(parents=True)
    clip = write_clip(folder / "clip (final) [v2].mp4", Clip(shots=(1.0, 1.0)))
    env = catalog_env(catalog, tmp_path / "home", FOOTAGE_CLIP_MODEL=tiny_clip)
    _out(env, "index", str(folder))
    piped = _out(env, "search", "a red circle")
    assert str(clip) in piped.splitlines()[3]  # the whole path, on its row's first line
    assert str(clip) in _out(env, "show", str(clip))


def test_nothing_is_cut_short_in_a_narrow_terminal(catalog: Catalog, tiny_clip: str, tmp_path: Path) -> None:
    folder = tmp_path / ("a-folder-with-a-long-name-" * 3)
    folder.mkdir()
    clip = write_clip(folder / "A001_C002_20261127_R1.mov", Clip(shots=(1.0,)))
    env = catalog_env(catalog, tmp_path / "home", FOOTAGE_CLIP_MODEL=tiny_clip, FORCE_COLOR="1", COLUMNS="80")
    _out(env, "index", str(folder))
    for args in (["search", "a red circle"], ["models"], ["show", str(clip)]):
        shown = _out(env, *args)
        assert "…" not in shown, args
        assert max(len(line) for line in shown.splitlines()) <= 80, args
    # Folded, the path is all there: its pieces, read down the column, make it whole.
    shown = _out(env, "search", "a red circle")
    column = "".join(
        line.split("│")[3].strip() for line in shown.splitlines() if line.count("│") >= 6 and line.split("│")[3].strip()
    )
    assert str(clip) in column


def test_rotated_footage_is_listed_as_it_plays(catalog: Catalog, tiny_clip: str, tmp_path: Path) -> None:
    """A phone clip coded 320x136 with rotation 270 plays upright at 136x320."""
    clip = write_clip(tmp_path / "phone.mp4", Clip(width=320, height=136, rotation=270, shots=(1.0,)))
    env = catalog_env(catalog, tmp_path / "home", FOOTAGE_CLIP_MODEL=tiny_clip)
    _out(env, "index", str(clip))
    import json

    found = json.loads(_out(env, "search", "a red circle", "--json"))["results"][0]["master"]
    assert (found["width"], found["height"], found["display_aspect_ratio"]) == (136, 320, "17:40")
    shown = _out(env, "show", str(clip))
    assert "136x320 (17:40)" in shown
    assert re.search(r"rotation\s*│\s*270", shown)
