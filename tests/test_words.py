"""Search that also reads: names, folders, metadata, notes and tags, fused with the picture;
selections kept in order, exported for editors, surviving a file's move."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import opentimelineio as otio
import pytest
import sqlalchemy as sa
from media import Clip, write_clip
from typer.testing import CliRunner

from catalog import Catalog, schema
from catalog.words import QuerySyntaxError, folder_words, name_words, parse_query, split_words
from cli.main import app
from indexer.embed import ClipEmbedder
from indexer.index import index_file

runner = CliRunner()


def test_names_split_as_camera_and_editorial_names_are_written() -> None:
    assert split_words("A003C012_230101_R2AB") == ["a003c012", "a003", "c012", "230101", "r2ab", "r2", "ab"]
    assert split_words("sc12_tk3") == ["sc12", "tk3"]
    assert split_words("Ünïcødé clip (final) [v2]") == ["ünïcødé", "clip", "final", "v2"]
    # Folders below the watched folder count; those above it do not.
    assert name_words("/srv/nas/interviews/maria/A001C002.mov") == ["a001c002", "a001", "c002"]
    assert folder_words("/srv/nas/interviews/maria/A001.mov", "/srv/nas") == ["interviews", "maria"]
    assert folder_words("/srv/nas/x/y/z/A001.mov", None) == ["x", "y", "z"]  # the nearest three


def test_a_query_reads_fields_phrases_and_stop_words() -> None:
    query = parse_query('A003C012 a harbour name:sc12_tk3 note:"client liked" 01:00:00:00', ["a"])
    assert [(t.words, t.field) for t in query.terms] == [
        (("a003c012",), None),
        (("harbour",), None),
        (("sc12",), "name"),
        (("tk3",), "name"),
        (("client", "liked"), "note"),
        (("01",), None),
        (("00",), None),
    ]
    assert query.picture_text == "A003C012 a harbour 01:00:00:00"  # restricted terms are not about the picture
    assert "'sc12':*A" in query.tsquery and "('client':*C & 'liked':*C)" in query.tsquery
    assert "'01'" in query.tsquery and "'01':*" not in query.tsquery  # short words match whole only
    with pytest.raises(QuerySyntaxError, match="unknown field 'reel:'"):
        parse_query("reel:A003")
    with pytest.raises(QuerySyntaxError, match="close the quote"):
        parse_query('note:"unclosed')


@pytest.fixture
def library(catalog: Catalog, embedder: ClipEmbedder, tmp_path: Path) -> dict[str, int]:
    """Camera-style names in editorial folders, one MOV with real-style camera metadata."""
    root = tmp_path / "nas"
    files = {
        "A003C012_230101_R2AB.mov": root / "interviews" / "maria",
        "A003C099_230101_R2AB.mov": root / "interviews" / "maria",
        "sc12_tk3.mp4": root / "drama",
        "B001C003_230102_X9ZZ.mov": root / "broll",
        "Ünïcødé clip (final) [v2].mp4": root / "misc",
    }
    ids: dict[str, int] = {}
    for shot, (name, folder) in enumerate(files.items()):
        folder.mkdir(parents=True, exist_ok=True)
        metadata = (
            {"title": "Harbour at dusk", "make": "ARRI", "model": "ALEXA Mini", "timecode": "01:00:00:00"}
            if name.startswith("B001")
            else {}
        )
        clip = Clip(
            width=160 + 16 * shot,  # each file a picture of its own, so the picture side ranks them
            shots=(1.0, 1.0),
            metadata=metadata,
            stream_metadata={"reel_name": "A003R2AB"} if metadata else {},
        )
        path = write_clip(folder / name, clip)
        result = index_file(catalog, embedder, path)
        assert result.outcome == "indexed", result.message
        ids[name] = result.asset_id or 0
    return ids


def _env(catalog: Catalog, tiny_clip: str, **extra: str) -> dict[str, str]:
    return {
        "FOOTAGE_DATABASE_URL": catalog.engine.url.render_as_string(hide_password=False),
        "FOOTAGE_CLIP_MODEL": tiny_clip,
        "FOOTAGE_HOME": str(catalog.home),
        **extra,
    }


def _search(env: dict[str, str], *args: str) -> dict:
    result = runner.invoke(app, ["search", *args, "--json"], env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _names(answer: dict) -> list[str]:
    return [Path(r["master"]["path"]).name for r in answer["results"]]


def test_names_folders_and_metadata_are_found(library: dict[str, int], catalog: Catalog, tiny_clip: str) -> None:
    env = _env(catalog, tiny_clip)
    named = _search(env, "A003C012")
    assert _names(named)[0] == "A003C012_230101_R2AB.mov"
    first = named["results"][0]["evidence"]
    assert first["named"] is True and first["words"] == ["a003c012"]
    # A part of a clip name, a prefix, a scene and take, a folder, letters beyond ASCII.
    assert set(_names(_search(env, "C012", "--words-only"))) == {"A003C012_230101_R2AB.mov"}
    assert set(_names(_search(env, "A003C0", "--words-only"))) == {
        "A003C012_230101_R2AB.mov",
        "A003C099_230101_R2AB.mov",
    }
    assert _names(_search(env, "sc12 tk3"))[0] == "sc12_tk3.mp4"
    folder = _search(env, "maria", "--words-only")
    assert set(_names(folder)) == {"A003C012_230101_R2AB.mov", "A003C099_230101_R2AB.mov"}
    assert not any(r["evidence"]["named"] for r in folder["results"])  # a folder does not name a file
    assert _names(_search(env, "ünïcødé", "--words-only")) == ["Ünïcødé clip (final) [v2].mp4"]
    # Camera make and model, title, and the timecode track's reel name, only as metadata.
    for query in ("meta:alexa", "meta:arri", "harbour", "meta:A003R2AB"):
        assert _names(_search(env, query, "--words-only")) == ["B001C003_230102_X9ZZ.mov"], query
    assert _names(_search(env, "name:alexa", "--words-only")) == []


def test_words_only_loads_no_model(library: dict[str, int], catalog: Catalog, tiny_clip: str) -> None:
    env = _env(catalog, tiny_clip, FOOTAGE_CLIP_MODEL="local-dir:/nonexistent/model")
    assert _names(_search(env, "sc12", "--words-only")) == ["sc12_tk3.mp4"]
    failed = runner.invoke(app, ["search", "sc12"], env=env)
    assert failed.exit_code != 0  # the picture side needs the model: proof the first search did not load it


def test_fusion_leaves_a_description_alone_when_no_word_matches(
    library: dict[str, int], catalog: Catalog, tiny_clip: str
) -> None:
    env = _env(catalog, tiny_clip)
    query = "purple zeppelin over the waves"
    both, picture = _search(env, query), _search(env, query, "--picture-only")
    assert _names(both) == _names(picture) and _names(both)
    assert all(r["evidence"]["words"] == [] and r["evidence"]["picture_score"] is not None for r in both["results"])
    # A word that names a file lifts it to the top over the picture's order.
    last = _names(picture)[-1]
    lifted = _search(env, query + " " + Path(last).stem.split("_")[0])
    assert _names(lifted)[0] == last


def test_notes_and_tags_are_searchable_at_once_with_who_and_when(
    library: dict[str, int], catalog: Catalog, tiny_clip: str
) -> None:
    env = _env(catalog, tiny_clip, FOOTAGE_USER="maria.editor")
    asset = library["sc12_tk3.mp4"]
    noted = runner.invoke(app, ["note", f"{asset}@1.5", "hero shot, the client liked this", "--json"], env=env)
    assert noted.exit_code == 0, noted.output
    assert json.loads(noted.stdout)["author"] == "maria.editor"
    tagged = runner.invoke(app, ["tag", str(asset), "Keeper", "drone"], env=env)
    assert tagged.exit_code == 0 and "keeper, drone" in tagged.output

    found = _search(env, "note:client", "--words-only")
    assert _names(found) == ["sc12_tk3.mp4"]
    moment = found["results"][0]["moments"][0]
    assert moment["start_s"] <= 1.5 < moment["end_s"]  # the noted moment, not the first
    shown_in_search = {(a["kind"], a["text"], a["author"]) for a in found["results"][0]["annotations"]}
    assert ("note", "hero shot, the client liked this", "maria.editor") in shown_in_search
    table = runner.invoke(app, ["search", "note:client", "--words-only"], env={**env, "COLUMNS": "200"})
    assert "hero shot, the client liked this (maria.editor)" in " ".join(table.stdout.split())
    assert _names(_search(env, "tag:keeper", "--words-only")) == ["sc12_tk3.mp4"]
    assert _names(_search(env, "note:keeper", "--words-only")) == []  # a tag is not a note

    shown = json.loads(runner.invoke(app, ["show", str(asset), "--json"], env=env).stdout)
    kinds = {(a["kind"], a["text"], a["author"]) for a in shown["annotations"]}
    assert ("note", "hero shot, the client liked this", "maria.editor") in kinds
    assert ("tag", "keeper", "maria.editor") in kinds
    assert all(a["created_at"] for a in shown["annotations"])

    assert runner.invoke(app, ["untag", str(asset), "keeper"], env=env).exit_code == 0
    assert _names(_search(env, "tag:keeper", "--words-only")) == []
    again = runner.invoke(app, ["untag", str(asset), "keeper"], env=env)
    assert again.exit_code == 5 and "Traceback" not in again.output
    bad = runner.invoke(app, ["tag", str(asset), "two words"], env=env)
    assert bad.exit_code == 2 and "one word" in bad.output
    outside = runner.invoke(app, ["note", f"{asset}@99", "late"], env=env)
    assert outside.exit_code == 2 and "outside it" in outside.output


def test_selections_keep_order_export_and_survive_a_move(
    library: dict[str, int], catalog: Catalog, embedder: ClipEmbedder, tiny_clip: str, tmp_path: Path
) -> None:
    env = _env(catalog, tiny_clip, FOOTAGE_USER="ed")
    a, b, c = library["sc12_tk3.mp4"], library["A003C012_230101_R2AB.mov"], library["B001C003_230102_X9ZZ.mov"]
    made = runner.invoke(app, ["select", "opening", f"{b}@1.2", f"{a}@0.1", str(c)], env=env)
    assert made.exit_code == 0, made.output
    again = runner.invoke(app, ["select", "opening", f"{a}@0.1"], env=env)
    assert "Added 0 of 1" in again.output  # an entry is kept once

    listed = json.loads(runner.invoke(app, ["selection", "opening", "--json"], env=env).stdout)
    assert [(e["asset_id"], e["at_s"]) for e in listed["entries"]] == [(b, 1.2), (a, 0.1), (c, None)]
    summary = json.loads(runner.invoke(app, ["selections", "--json"], env=env).stdout)
    assert [(s["name"], s["entries"], s["author"]) for s in summary["selections"]] == [("opening", 3, "ed")]

    # Exports in the selection's order, read back through opentimelineio.
    for suffix in (".otio", ".edl"):
        out = tmp_path / f"opening{suffix}"
        exported = runner.invoke(app, ["selection", "opening", "--export", str(out)], env=env)
        assert exported.exit_code == 0, exported.output
        clips = list(otio.adapters.read_from_file(str(out)).find_clips())
        assert len(clips) == 3
        if suffix == ".otio":
            assert [cl.metadata["footage"]["asset_id"] for cl in clips] == [b, a, c]
    rows = list(csv.DictReader(_export_csv(env, tmp_path)))
    assert [int(r["asset_id"]) for r in rows] == [b, a, c]
    assert float(rows[2]["start_s"]) == 0.0 and float(rows[2]["end_s"]) == pytest.approx(2.0, abs=0.05)

    # --in searches inside the selection only; --select adds results to one.
    inside = _search(env, "maria", "--words-only", "--in", "opening")
    assert _names(inside) == ["A003C012_230101_R2AB.mov"]  # not its sibling A003C099
    _search(env, "A003C099", "--words-only", "--select", "opening")
    listed = json.loads(runner.invoke(app, ["selection", "opening", "--json"], env=env).stdout)
    assert listed["entries"][-1]["asset_id"] == library["A003C099_230101_R2AB.mov"]

    # A moved file keeps its place, its notes and its tags; its new name is searched.
    runner.invoke(app, ["tag", str(a), "keeper"], env=env)
    old = Path(listed["entries"][1]["path"])
    moved = old.with_name("sc12_tk3_final.mp4")
    os.rename(old, moved)
    assert index_file(catalog, embedder, moved).outcome == "moved"
    listed = json.loads(runner.invoke(app, ["selection", "opening", "--json"], env=env).stdout)
    assert listed["entries"][1]["asset_id"] == a and listed["entries"][1]["path"] == str(moved)
    assert _names(_search(env, "tag:keeper final", "--words-only"))[0] == "sc12_tk3_final.mp4"

    # A deleted file keeps them too: its asset stays, missing, with its notes, tags and entries.
    from catalog.assets import mark_missing

    moved.unlink()
    with catalog.session() as session:
        assert mark_missing(session, str(moved))
    listed = json.loads(runner.invoke(app, ["selection", "opening", "--json"], env=env).stdout)
    assert listed["entries"][1]["asset_id"] == a and listed["entries"][1]["status"] == "missing"
    assert _names(_search(env, "tag:keeper", "--words-only")) == ["sc12_tk3_final.mp4"]

    missing = runner.invoke(app, ["selection", "nope"], env=env)
    assert missing.exit_code == 5 and "opening" in missing.output


def _export_csv(env: dict[str, str], tmp_path: Path) -> list[str]:
    out = tmp_path / "opening.csv"
    assert runner.invoke(app, ["selection", "opening", "--export", str(out)], env=env).exit_code == 0
    return out.read_text().splitlines()


def test_an_older_catalog_gets_its_names_as_words(make_database) -> None:  # type: ignore[no-untyped-def]
    engine = sa.create_engine(make_database())
    try:
        schema.upgrade(engine, "0006")
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO assets (path, status) VALUES ('/old/rushes/A001C007_x.mov', 'indexed')"))
        schema.upgrade(engine)
        with engine.connect() as conn:
            words = conn.execute(sa.text("SELECT name_words || folder_words FROM asset_words")).scalar_one()
            hit = conn.execute(sa.text("SELECT document @@ CAST('c007' AS tsquery) FROM asset_words")).scalar_one()
        assert words == ["a001c007", "a001", "c007", "x", "old", "rushes"] and hit
    finally:
        engine.dispose()
