"""Search: exact against brute force, query by example, families, filters, CLI."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import av
import numpy as np
import opentimelineio as otio
import pytest
import sqlalchemy as sa
from media import Clip, write_clip
from PIL import Image
from sqlalchemy.orm import Session
from tiny_models import write_tiny_clip
from typer.testing import CliRunner

from catalog import Asset, Catalog, MomentView, Rendition, search
from catalog.results import SearchFilters, SearchOptions
from catalog.search import search_vector
from catalog.storages import mounts_of
from catalog.thumbnails import thumbnail_path
from cli.main import app
from indexer.embed import ClipEmbedder
from indexer.index import IndexOptions, index_file
from indexer.sampling import SamplingOptions

MODEL = "test-model"
runner = CliRunner()


def _unit(rng: np.random.Generator, n: int, dim: int = 512) -> np.ndarray:
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _fill(session: Session, vectors: np.ndarray, per_asset: int, **asset_facts: object) -> list[int]:
    ids = []
    for a in range(len(vectors) // per_asset):
        storage, rel = mounts_of(session).place(f"/synthetic/{asset_facts.get('height', 0)}/{a}.mov")
        asset = Asset(storage_id=storage.id, rel_path=rel, status="indexed", **asset_facts)
        session.add(asset)
        session.flush()
        ids.append(asset.id)
        session.execute(
            sa.insert(MomentView),
            [
                {
                    "asset_id": asset.id,
                    "start_s": float(i),
                    "end_s": float(i + 1),
                    "frame_s": float(i),
                    "embedding": vectors[a * per_asset + i],
                    "embedding_model": MODEL,
                    "embedding_dim": 512,
                }
                for i in range(per_asset)
            ],
        )
    return ids


def _brute_force(vectors: np.ndarray, ids: list[int], per_asset: int, query: np.ndarray, k: int) -> list[int]:
    scores = (vectors @ query).reshape(len(ids), per_asset).max(axis=1)
    return [ids[i] for i in np.argsort(-scores)[:k]]


def test_hnsw_matches_brute_force(session: Session) -> None:
    rng = np.random.default_rng(7)
    vectors = _unit(rng, 1500)
    ids = _fill(session, vectors, per_asset=5, height=1080)
    session.execute(sa.text("ANALYZE segments"))
    session.execute(sa.text("SET LOCAL enable_seqscan = off"))
    plan = "\n".join(
        session.execute(
            sa.text(
                "EXPLAIN SELECT id FROM segments WHERE embedding_dim = 512 "
                "ORDER BY (embedding::halfvec(512)) <=> CAST(:q AS halfvec(512)) LIMIT 10"
            ),
            {"q": vectors[0].tolist()},
        ).scalars()
    )
    assert "ix_segments_embedding_hnsw_512" in plan
    for query in _unit(rng, 5):
        expected = _brute_force(vectors, ids, 5, query, 10)
        hnsw = [h.family.master.asset_id for h in search_vector(session, query, MODEL, SearchOptions(limit=10))]
        exact = [
            h.family.master.asset_id for h in search_vector(session, query, MODEL, SearchOptions(limit=10, exact=True))
        ]
        assert exact == expected
        assert hnsw == expected


def test_filters_do_not_lose_results(
    session: Session, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(3)
    query = _unit(rng, 1)[0]
    # 2000 SD segments crowd the neighbourhood of the query; 4 HD ones lie far away.
    near = query + 0.3 * _unit(rng, 2000)
    near /= np.linalg.norm(near, axis=1, keepdims=True)
    _fill(session, near, per_asset=20, height=480)
    far_ids = _fill(session, _unit(rng, 4), per_asset=1, height=2160)
    session.execute(sa.text("ANALYZE segments"))
    session.execute(sa.text("SET LOCAL enable_seqscan = off"))  # make the planner use HNSW
    options = SearchOptions(limit=10, filters=SearchFilters(min_height=2000))
    with caplog.at_level(logging.DEBUG, logger="catalog.search"):
        hits = search_vector(session, query, MODEL, options)
    assert sorted(h.family.master.asset_id or 0 for h in hits) == sorted(far_ids)
    assert _rounds(caplog) == ["exact"]  # four rows pass: ranked exactly from the start
    # Were they counted as many, the index would walk its whole graph and run dry: the exact
    # scan is the safety net.
    monkeypatch.setattr(search, "_EXACT_BELOW", 1)
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="catalog.search"):
        hits = search_vector(session, query, MODEL, options)
    assert sorted(h.family.master.asset_id or 0 for h in hits) == sorted(far_ids)
    assert _rounds(caplog) == ["index", "exact"]


def _rounds(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [str(r.args[0]) for r in caplog.records if r.name == "catalog.search" and isinstance(r.args, tuple)]


def test_iterative_scans_fill_a_filtered_page_from_the_index(
    session: Session, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """10% of the rows pass the filter: pgvector 0.8's iterative scan keeps walking the graph
    until the page is full, with no exact fallback, and finds what brute force finds."""
    monkeypatch.setattr(search, "_EXACT_BELOW", 100)  # 1500 pass: many, at this test's scale
    rng = np.random.default_rng(11)
    vectors = _unit(rng, 3000)
    _fill(session, vectors[:2700], per_asset=5, height=480)  # the crowd the filter removes
    hd_ids = _fill(session, vectors[2700:], per_asset=5, height=2160)
    session.execute(sa.text("ANALYZE segments"))
    session.execute(sa.text("SET LOCAL enable_seqscan = off"))
    found = 0
    for query in _unit(rng, 5):
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="catalog.search"):
            hits = search_vector(session, query, MODEL, SearchOptions(limit=10, filters=SearchFilters(min_height=2000)))
        assert _rounds(caplog) == ["index"]
        assert len(hits) == 10  # a full page
        expected = _brute_force(vectors[2700:], hd_ids, 5, query, 10)
        found += len({h.family.master.asset_id for h in hits} & set(expected))
    assert found / 50 >= 0.95  # recall@10 of the halfvec index against float32 brute force


def test_other_models_are_never_mixed_in(session: Session) -> None:
    rng = np.random.default_rng(5)
    vectors = _unit(rng, 10)
    _fill(session, vectors, per_asset=5, height=720)
    assert search_vector(session, vectors[0], "another-model", SearchOptions()) == []
    assert len(search_vector(session, vectors[0], MODEL, SearchOptions())) == 2


def _grab(path: Path, at_s: float, out: Path) -> Path:
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if frame.time is not None and frame.time >= at_s - 1e-6:
                frame.to_image().save(out)
                return out
    raise AssertionError("no frame at that time")


@pytest.fixture
def library(catalog: Catalog, embedder: ClipEmbedder, tmp_path: Path) -> dict[str, int]:
    """Three masters with different shots, and a linked rendition of the first."""
    folder = tmp_path / "library"
    folder.mkdir()
    ids: dict[str, int] = {}
    for name, shots in (("alpha.mp4", (1.0, 1.0)), ("beta.mov", (1.0, 1.0, 1.0)), ("gamma.mkv", (1.0,))):
        result = index_file(catalog, embedder, write_clip(folder / name, Clip(shots=shots)))
        ids[name] = result.asset_id or 0
    renders = tmp_path / "renders"
    renders.mkdir()
    upscaled = write_clip(renders / "alpha.4k.mp4", Clip(width=320, height=180, shots=(1.0, 1.0)))
    rendition = index_file(catalog, embedder, upscaled, IndexOptions(kind="rendition"))
    ids["alpha.4k.mp4"] = rendition.asset_id or 0
    with catalog.session() as s:
        s.add(
            Rendition(
                master_id=ids["alpha.mp4"],
                rendition_asset_id=ids["alpha.4k.mp4"],
                label="4k",
                target_width=320,
                target_height=180,
                model_name="tiny-esrgan",
                model_sha256="b" * 64,
                status="done",
                progress=1.0,
                provenance={"model": "tiny-esrgan"},
            )
        )
    return ids


def _env(catalog: Catalog, tiny_clip: str) -> dict[str, str]:
    return {
        "FOOTAGE_DATABASE_URL": catalog.engine.url.render_as_string(hide_password=False),
        "FOOTAGE_CLIP_MODEL": tiny_clip,
        "FOOTAGE_HOME": str(catalog.home),  # where the indexer above kept the thumbnails
    }


def _search(env: dict[str, str], *args: str) -> dict:
    result = runner.invoke(app, ["search", *args, "--json"], env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_query_by_example_finds_that_moment(
    library: dict[str, int], catalog: Catalog, tiny_clip: str, tmp_path: Path
) -> None:
    still = _grab(tmp_path / "library" / "beta.mov", 2.0, tmp_path / "still.png")
    report = _search(_env(catalog, tiny_clip), "--image", str(still))
    best = report["results"][0]
    assert best["master"]["asset_id"] == library["beta.mov"]
    assert best["moments"][0]["start_s"] == pytest.approx(2.0, abs=0.05)
    assert best["moments"][0]["score"] > 0.95


def test_family_appears_once_with_both_versions(library: dict[str, int], catalog: Catalog, tiny_clip: str) -> None:
    env = _env(catalog, tiny_clip)
    report = _search(env, "a red field with stripes", "--limit", "10")
    masters = [r["master"]["asset_id"] for r in report["results"]]
    assert sorted(masters) == sorted([library["alpha.mp4"], library["beta.mov"], library["gamma.mkv"]])
    alpha = next(r for r in report["results"] if r["master"]["asset_id"] == library["alpha.mp4"])
    assert (alpha["master"]["width"], alpha["master"]["height"]) == (160, 90)
    (rendition,) = alpha["renditions"]
    assert (rendition["width"], rendition["height"], rendition["kind"]) == (320, 180, "rendition")
    assert rendition["rendition"]["model_name"] == "tiny-esrgan" and rendition["rendition"]["status"] == "done"

    only_renditions = _search(env, "a red field", "--kind", "rendition")
    assert [r["master"]["asset_id"] for r in only_renditions["results"]] == [library["alpha.mp4"]]
    assert only_renditions["results"][0]["moments"][0]["asset_id"] == library["alpha.4k.mp4"]


def test_cli_filters(library: dict[str, int], catalog: Catalog, tiny_clip: str, tmp_path: Path) -> None:
    env = _env(catalog, tiny_clip)
    ids = lambda report: sorted(r["master"]["asset_id"] for r in report["results"])  # noqa: E731
    assert ids(_search(env, "shot", "--has-rendition")) == [library["alpha.mp4"]]
    assert ids(_search(env, "shot", "--no-rendition")) == sorted([library["beta.mov"], library["gamma.mkv"]])
    assert ids(_search(env, "shot", "--min-height", "100")) == [library["alpha.mp4"]]  # via its 180p rendition
    assert ids(_search(env, "shot", "--kind", "master", "--max-height", "100")) == sorted(
        [library["alpha.mp4"], library["beta.mov"], library["gamma.mkv"]]
    )
    assert ids(_search(env, "shot", "--under", str(tmp_path / "library" / "g"))) == [library["gamma.mkv"]]
    assert ids(_search(env, "shot", "--since", "2999-01-01")) == []


def test_moments_and_like(library: dict[str, int], catalog: Catalog, tiny_clip: str) -> None:
    env = _env(catalog, tiny_clip)
    report = _search(env, "--like", f"{library['beta.mov']}@2.5", "--moments", "3", "--limit", "1")
    (best,) = report["results"]
    assert best["master"]["asset_id"] == library["beta.mov"]
    assert best["moments"][0]["start_s"] == pytest.approx(2.0, abs=0.05)
    assert len(best["moments"]) == 3
    # The timecode is the representative frame's: the middle of the 1 s shot at 2 s.
    assert best["moments"][0]["timecode"] == "00:00:02:12"
    # The moment asked about is found by its own stored views: 1 means identical.
    assert best["score"] == pytest.approx(1.0, abs=1e-3) and best["moments"][0]["score"] == best["score"]
    assert set(best) == {"rank", "score", "master", "renditions", "moments", "evidence", "annotations"}
    assert best["evidence"] == {"words": [], "named": False, "picture_score": best["score"]}
    assert set(report["query"]) == {"text", "image", "like", "model", "sides", "in"}


def test_every_moment_has_its_thumbnail(library: dict[str, int], catalog: Catalog, tiny_clip: str) -> None:
    report = _search(_env(catalog, tiny_clip), "shot", "--moments", "5", "--limit", "5")
    moments = [m for hit in report["results"] for m in hit["moments"]]
    assert moments
    for moment in moments:
        with Image.open(moment["thumbnail"]) as picture:
            picture.load()  # decodes: a real JPEG, not a placeholder
            # Upright, square pixels, at most 320 wide: the 160x90 masters stay as they are.
            assert picture.size == ((320, 180) if moment["path"].endswith("alpha.4k.mp4") else (160, 90))
    assert catalog.home is not None
    beta = library["beta.mov"]
    with catalog.session() as s:
        frames = s.execute(sa.select(MomentView.frame_s).where(MomentView.asset_id == beta).distinct()).scalars()
        expected = sorted(thumbnail_path(catalog.home / "thumbnails", beta, f).name for f in frames)
    assert sorted(p.name for p in (catalog.home / "thumbnails" / str(beta)).iterdir()) == expected
    shown = runner.invoke(app, ["show", str(beta), "--json"], env=_env(catalog, tiny_clip))
    (listed,) = json.loads(shown.stdout)["moments_by_model"].values()
    assert sorted(Path(m["thumbnail"]).name for m in listed) == expected


def test_reindexing_replaces_the_thumbnails(
    library: dict[str, int], catalog: Catalog, embedder: ClipEmbedder, tmp_path: Path
) -> None:
    assert catalog.home is not None
    folder = catalog.home / "thumbnails" / str(library["beta.mov"])
    before = {p.name for p in folder.iterdir()}
    sampling = SamplingOptions(max_gap_s=0.4)
    index_file(catalog, embedder, tmp_path / "library" / "beta.mov", IndexOptions(sampling=sampling, force=True))
    after = {p.name for p in folder.iterdir()}
    assert len(after) > len(before) and after != before
    assert not [p for p in (catalog.home / "thumbnails").iterdir() if p.name.startswith(".")]  # no staging left


@pytest.mark.parametrize("suffix", [".otio", ".edl", ".csv"])
def test_results_export_as_edit_lists(
    library: dict[str, int], catalog: Catalog, tiny_clip: str, tmp_path: Path, suffix: str
) -> None:
    target = tmp_path / f"selects{suffix}"
    env = _env(catalog, tiny_clip)
    report = _search(env, "shot", "--moments", "3", "--export", str(target))
    moments = [m for hit in report["results"] for m in hit["moments"]]
    if suffix == ".csv":
        with target.open() as f:
            rows = list(csv.DictReader(f))
        assert [(r["path"], r["start_timecode"], r["end_timecode"]) for r in rows] == [
            (m["path"], m["start_timecode"], m["end_timecode"]) for m in moments
        ]
        return
    timeline = otio.adapters.read_from_file(str(target))
    clips = list(timeline.find_clips())
    assert len(clips) == len(moments)
    for clip, moment in zip(clips, moments, strict=True):
        # The clips are 25 fps from 00:00:00:00, so source in and out are the moment's frames.
        assert clip.source_range.start_time == otio.opentime.RationalTime(round(moment["start_s"] * 25), 25)
        assert clip.source_range.end_time_exclusive() == otio.opentime.RationalTime(round(moment["end_s"] * 25), 25)
        if suffix == ".otio":
            assert clip.media_reference.target_url == Path(moment["path"]).as_uri()
        else:
            assert clip.name == Path(moment["path"]).name


def test_an_export_to_an_unknown_format_is_refused(library: dict[str, int], catalog: Catalog, tiny_clip: str) -> None:
    result = runner.invoke(app, ["search", "shot", "--export", "x.mov"], env=_env(catalog, tiny_clip))
    assert result.exit_code == 2
    assert result.output == "Error: cannot export to x.mov: name it .edl (CMX 3600), .otio or .csv\n"


def test_missing_master_is_shown_with_its_renditions(library: dict[str, int], catalog: Catalog, tiny_clip: str) -> None:
    with catalog.session() as s:
        s.execute(sa.update(Asset).where(Asset.id == library["alpha.mp4"]).values(status="missing"))
    report = _search(_env(catalog, tiny_clip), "shot", "--has-rendition")
    (alpha,) = report["results"]
    assert alpha["master"]["status"] == "missing"
    assert alpha["renditions"][0]["status"] == "indexed"
    table = runner.invoke(app, ["search", "shot", "--has-rendition"], env=_env(catalog, tiny_clip))
    assert "missing" in table.stdout and "4k by tiny-esrgan" in table.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["search", "   "], 2, "Error: the search text is empty; describe what the shot shows or name the file\n"),
        (["search"], 2, "Error: give exactly one of: search text, --image FILE or --like ASSET@TIME\n"),
        (["search", "x", "--kind", "proxy"], 2, "Error: unknown --kind 'proxy'; known: any, master, rendition\n"),
        (["search", "--like", "999@1"], 5, "Error: no asset with id or path '999' in the catalog\n"),
        (
            ["search", "--like", "1@soon"],
            2,
            "Error: cannot read 'soon' as a time; use seconds (75.5) or H:MM:SS (0:01:15.5)\n",
        ),
        (["show", "/no/such/file.mov"], 5, "Error: no asset with id or path '/no/such/file.mov' in the catalog\n"),
    ],
)
def test_bad_input(catalog: Catalog, tiny_clip: str, args: list[str], code: int, message: str) -> None:
    result = runner.invoke(app, args, env=_env(catalog, tiny_clip))
    assert (result.exit_code, result.stderr) == (code, message)


def test_nothing_found_says_why(catalog: Catalog, tiny_clip: str, embedder: ClipEmbedder, tmp_path: Path) -> None:
    empty = runner.invoke(app, ["search", "a harbour"], env=_env(catalog, tiny_clip))
    assert (empty.exit_code, empty.stdout) == (0, "No matching footage.\n")
    assert empty.stderr == (
        "Hint: the catalog holds no indexed footage yet: run `footage index FOLDER` or `footage watch FOLDER`\n"
    )
    index_file(catalog, embedder, write_clip(tmp_path / "a.mp4", Clip()))
    other = write_tiny_clip(tmp_path / "other-clip", seed=1)
    elsewhere = runner.invoke(
        app, ["search", "a harbour", "--json"], env={**_env(catalog, tiny_clip), "FOOTAGE_CLIP_MODEL": other}
    )
    found = json.loads(elsewhere.stdout)
    assert found["results"] == []
    assert found["hint"] == (
        f"nothing in the catalog was embedded with {other}; it holds vectors of {embedder.identity} (1 asset): "
        "set FOOTAGE_CLIP_MODEL (and FOOTAGE_CLIP_PRETRAINED) to that model, or run `footage reindex`"
    )


def test_a_moment_or_picture_that_is_not_there(library: dict[str, int], catalog: Catalog, tiny_clip: str) -> None:
    env = _env(catalog, tiny_clip)
    alpha = library["alpha.mp4"]
    past = runner.invoke(app, ["search", "--like", f"{alpha}@99999"], env=env)
    assert (past.exit_code, past.stderr) == (5, f"Error: asset {alpha} is 2.0 s long; 99999 is outside it (0 to 2.0)\n")
    gone = runner.invoke(app, ["search", "--image", "/nonexistent.png"], env=env)
    assert (gone.exit_code, gone.stderr) == (5, "Error: no such picture: /nonexistent.png\n")


def test_unreadable_image(catalog: Catalog, tiny_clip: str, tmp_path: Path) -> None:
    fake = tmp_path / "still.png"
    fake.write_text("not a picture")
    result = runner.invoke(app, ["search", "--image", str(fake)], env=_env(catalog, tiny_clip))
    assert result.exit_code == 1
    assert result.stderr == f"Error: {fake}: cannot read as an image (UnidentifiedImageError)\n"


def test_show(library: dict[str, int], catalog: Catalog, tiny_clip: str) -> None:
    env = _env(catalog, tiny_clip)
    result = runner.invoke(app, ["show", str(library["alpha.4k.mp4"]), "--json"], env=env)
    assert result.exit_code == 0, result.output
    details = json.loads(result.stdout)
    assert details["asset"]["kind"] == "rendition"
    assert details["master"]["asset_id"] == library["alpha.mp4"]
    assert details["renditions"][0]["asset_id"] == library["alpha.4k.mp4"]
    assert details["segments_by_model"] == {tiny_clip: 4}
    # Each moment, not only a count: its span, the frame standing for it, its views.
    moments = details["moments_by_model"][tiny_clip]
    assert sum(m["views"] for m in moments) == 4
    assert all(m["start_s"] <= m["frame_s"] < m["end_s"] for m in moments)
    assert [m["start_s"] for m in moments] == sorted(m["start_s"] for m in moments)
    table = runner.invoke(app, ["show", str(library["alpha.mp4"])], env=env)
    assert "Provenance of rendition" in table.stdout
