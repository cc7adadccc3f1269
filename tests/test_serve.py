"""``footage serve``: a real service process answering over HTTP with the CLI's JSON; the
CLI uses it when it is up and works alone when it is not; strangers need a token."""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import opentimelineio as otio
import pytest
from media import Clip, write_clip
from polling import wait_for
from services import Service, catalog_env, start
from tiny_models import write_tiny_compact
from typer.testing import CliRunner

from catalog import Catalog
from cli.main import app

runner = CliRunner()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, token: str | None = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _cli(env: dict[str, str], *args: str) -> dict[str, Any]:
    result = runner.invoke(app, [*args, "--json"], env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@contextmanager
def _served(
    env: dict[str, str], logs: Path, *args: str, command: tuple[str, ...] = ("serve",)
) -> Iterator[tuple[Service, str]]:
    port = _free_port()
    service = start(env, logs, *command, "--port", str(port), *args)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert service.process.poll() is None, service.err.read_text()
        try:
            return _get(f"{url}/api/health")[0] == 200
        except OSError:
            return False

    try:
        wait_for(up, timeout=60, interval=0.2)
        yield service, url
    finally:
        code, _, err = service.stop()
        assert code == 0, err
        assert "Traceback" not in err, err
        # Libraries' INFO chatter (embedded server, Alembic, open_clip) only with -v.
        for chatter in ("PG_VERSION", "Context impl", "Loading full pretrained weights"):
            assert chatter not in err, err


@pytest.fixture
def indexed(catalog: Catalog, tiny_clip: str, tmp_path: Path) -> dict[str, str]:
    media = tmp_path / "media"
    media.mkdir()
    write_clip(media / "clip (final) [v2].mp4", Clip(shots=(1.0, 1.0)))
    write_clip(media / "b.mov", Clip(width=320, height=136, shots=(1.0, 1.0, 1.0)))
    env = catalog_env(catalog, tmp_path / "home", FOOTAGE_CLIP_MODEL=tiny_clip)
    assert runner.invoke(app, ["index", str(media)], env=env).exit_code == 0
    return env


def test_the_service_answers_as_the_cli_does(indexed: dict[str, str], tmp_path: Path) -> None:
    env = indexed
    alone = _cli(env, "search", "a red circle", "--moments", "2")
    assert alone["answered_by"] == "this command" and len(alone["results"]) == 2
    with _served(env, tmp_path / "logs") as (service, url):
        status, served = _get(f"{url}/api/search?q=a+red+circle&moments=2")
        assert status == 200
        assert served["answered_by"] == f"footage serve (pid {service.process.pid})"
        assert {**served, "answered_by": None} == {**alone, "answered_by": None}

        # The CLI finds the running service through FOOTAGE_HOME and gets the same answer.
        via = _cli(env, "search", "a red circle", "--moments", "2")
        assert via["answered_by"] == served["answered_by"]
        assert {**via, "answered_by": None} == {**alone, "answered_by": None}
        table = runner.invoke(app, ["search", "a red circle"], env=env)  # read back from the service's JSON
        assert table.exit_code == 0 and f"{served['results'][1]['score']:.3f}" in table.stdout

        first = alone["results"][0]["master"]["asset_id"]
        for path, command in (
            (f"/api/assets/{first}", ["show", str(first)]),
            ("/api/pairs", ["pairs"]),
            ("/api/jobs", ["jobs"]),
        ):
            status, answer = _get(url + path)
            assert status == 200 and answer == _cli(env, *command), path
        status, missing = _get(f"{url}/api/assets/99999")
        assert status == 404 and "99999" in missing["error"]
        status, bad = _get(f"{url}/api/search?q=x&limit=many")
        assert status == 400 and "bad parameter" in bad["error"]
    # Gone again: the announcement is removed and the CLI searches by itself.
    assert not (Path(env["FOOTAGE_HOME"]) / "server.json").exists()
    assert _cli(env, "search", "a red circle", "--moments", "2")["answered_by"] == "this command"


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("no Chromium in CI: .ci/run installs Debian's chromium")
    pytest.skip("no Chromium here: install Debian's chromium (apt install chromium) to run the browser tests")


@contextmanager
def _searched(
    env: dict[str, str], logs: Path, query: str, command: tuple[str, ...] = ("serve",)
) -> Iterator[tuple[Any, str]]:
    """A headless Chromium page on the service's page, with ``query`` searched; and the service's URL."""
    from playwright.sync_api import sync_playwright

    chromium = _chromium()
    with _served(env, logs, command=command) as (_, url), sync_playwright() as playwright:
        # No sandbox: CI runs as root, which Chromium's sandbox refuses.
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url)
            page.fill("#query", query)
            page.click("button[type=submit]")
            page.wait_for_selector(".moment img")
            yield page, url
        finally:
            browser.close()


def test_the_browser_page_shows_moments_as_pictures(indexed: dict[str, str], tmp_path: Path) -> None:
    with _searched(indexed, tmp_path / "logs", "a red circle") as (page, _):
        page.wait_for_function("[...document.querySelectorAll('.moment img')].every(i => i.complete)")
        sizes = page.eval_on_selector_all(".moment img", "all => all.map(i => [i.naturalWidth, i.naturalHeight])")
        assert len(sizes) >= 2 and all(w > 0 and h > 0 for w, h in sizes)  # decoded pictures, not broken ones
        assert page.inner_text("#status").startswith("2 results for “a red circle”")
        # File names are shown as text: brackets in a name are not markup.
        assert "clip (final) [v2].mp4" in page.inner_text("#results")
        # The same search as an edit list, downloaded from the page.
        with page.expect_download() as download:
            page.click(".exports .export-otio")
        timeline = otio.adapters.read_from_file(str(download.value.path()), adapter_name="otio_json")
        assert len(list(timeline.find_clips())) == page.locator(".moment").count()
        # Only the moments chosen.
        page.check(".moment .choose >> nth=1")
        chosen = page.eval_on_selector(".moment .choose >> nth=1", "box => box.value")
        with page.expect_download() as download:
            page.click(".exports .export-csv")
        with open(download.value.path()) as f:
            rows = list(csv.DictReader(f))
        assert [f"{r['asset_id']}@{round(float(r['frame_s']) * 1000)}" for r in rows] == [chosen]


def test_query_by_example_from_a_dropped_picture(indexed: dict[str, str], tmp_path: Path) -> None:
    with av.open(str(tmp_path / "media" / "b.mov")) as container:
        still = next(container.decode(video=0)).to_image()
    still.save(tmp_path / "still.png")
    with _searched(indexed, tmp_path / "logs", "a red circle") as (page, _):
        page.set_input_files("#picture", str(tmp_path / "still.png"))
        page.wait_for_function("document.getElementById('status').textContent.includes('like still.png')")
        first = page.inner_text(".hit >> nth=0")
        assert "b.mov" in first  # the picture's own clip ranks first
        assert not page.locator(".exports").count()  # a picture query is not re-run for an export
        # The CLI's filters: only versions at most 100 px tall leaves the 160x90 clip alone.
        page.fill("#max-height", "100")
        page.click("button[type=submit]")
        page.wait_for_function("document.getElementById('status').textContent.startsWith('1 result for')")
        assert "clip (final) [v2].mp4" in page.inner_text("#results")


def test_a_family_shows_master_and_rendition_side_by_side(indexed: dict[str, str], tmp_path: Path) -> None:
    env = indexed
    renders = tmp_path / "renders"
    renders.mkdir()
    upscaled = write_clip(renders / "clip.2x.mp4", Clip(width=320, height=180, shots=(1.0, 1.0)))
    assert runner.invoke(app, ["index", str(upscaled)], env=env).exit_code == 0
    master = str(tmp_path / "media" / "clip (final) [v2].mp4")
    assert runner.invoke(app, ["link", str(upscaled), "--to", master], env=env).exit_code == 0
    with _searched(env, tmp_path / "logs", "a red circle") as (page, url):
        page.click(".hit:has-text('clip (final) [v2].mp4') .moment a >> nth=0")
        page.wait_for_selector(".pairs .version.rendition img")
        page.wait_for_function("[...document.querySelectorAll('#family img')].every(i => i.complete)")
        sizes = page.eval_on_selector_all(".pairs img", "all => all.map(i => [i.naturalWidth, i.naturalHeight])")
        assert sizes == [[160, 90], [320, 180]]  # each version at its own resolution
        captions = page.inner_text(".pairs")
        assert "master · 160x90" in captions and "AI-upscaled · 320x180" in captions
        assert "made by another tool, linked to its master" in page.inner_text(".provenance")
        # The wipe: the rendition over the master scaled to its size; the edge follows the slider.
        assert page.eval_on_selector(".stage .under", "i => i.getBoundingClientRect().width") == 320
        page.fill("#wipe-position", "25")
        assert page.eval_on_selector(".stage .over", "i => i.style.clipPath") == "inset(0px 240px 0px 0px)"
        assert page.locator(".strip img").count() >= 2  # the master's moments as a strip
        assert _get(f"{url}/api/frames/99999/0")[0] == 404
        # Play the master from the moment: decoded by the browser when it can, else said so.
        playable = page.evaluate("document.createElement('video').canPlayType('video/mp4; codecs=\"avc1.64000d\"')")
        page.click(".pairs .version.master .play")
        if playable:
            page.wait_for_function("document.querySelector('.player').readyState >= 1")
            assert page.eval_on_selector(".player", "v => v.duration") == pytest.approx(2.0, abs=0.1)
        else:
            page.wait_for_selector(".cannot-play")


def test_a_rendition_requested_from_the_page_is_made(catalog: Catalog, tiny_clip: str, tmp_path: Path) -> None:
    root = tmp_path / "incoming"
    root.mkdir()
    write_clip(root / "a.mp4", Clip(shots=(1.0, 1.0)))
    env = catalog_env(catalog, tmp_path / "home", FOOTAGE_CLIP_MODEL=tiny_clip)
    assert runner.invoke(app, ["index", str(root)], env=env).exit_code == 0
    weights = write_tiny_compact(tmp_path / "tiny-x2.pth", scale=2)
    # `watch --serve`: the page's service and a worker in one process.
    watching = ("watch", str(root), "--settle", "0.3", "--serve")
    with _searched(env, tmp_path / "logs", "a red circle", command=watching) as (page, url):
        page.click(".moment a >> nth=0")
        page.wait_for_selector("#request")
        page.select_option("#request-target", "2x")
        page.fill("#request-model", str(weights))
        page.uncheck("#request-temporal")
        page.click("#request button[type=submit]")
        page.wait_for_function(
            "document.getElementById('request-status').textContent.endsWith(': done')", timeout=180_000
        )
        assert page.eval_on_selector("#request-progress", "p => p.value") == 1

        def shown() -> bool:  # the family anew, from its address, once the worker has indexed the rendition
            page.reload()
            page.wait_for_selector(".pairs .version.master img")
            return page.locator(".pairs .version.rendition img").count() == 1

        wait_for(shown, timeout=120, interval=1.0)
        made = page.inner_text(".pairs .version.rendition")
        assert "AI-upscaled · 320x180 · tiny-x2" in made and "temporal stage off" in made
        # Its Content Credentials: the state recorded at signing, and the file's own, in words.
        assert "Content Credentials: signed (self-made)" in page.inner_text(".pairs .version.rendition .credentials")
        page.click(".pairs .version.rendition .credentials-link")
        page.wait_for_selector(".credentials .verdict.valid")
        told = page.inner_text(".credentials-words")
        assert "untrusted outside this installation" in told and "made from a.mp4" in told
        # What the service did, counted for Prometheus: the page's search, the render's frames.
        with urllib.request.urlopen(f"{url}/metrics", timeout=30) as response:
            metrics = response.read().decode()
        counted = dict(line.rsplit(" ", 1) for line in metrics.splitlines() if line and not line.startswith("#"))
        assert float(counted["footage_search_seconds_count"]) >= 1
        assert float(counted["footage_frames_rendered_total"]) == 50  # the 2 s master, every frame once
        assert float(counted["footage_render_fps"]) == 0  # none running now
        ready = _get(f"{url}/health/ready")
        assert ready == (200, {"ready": True, "checks": {"catalog": "ok", "storage": "ok", "model": "ok"}})
        # A change without the token is refused, from this machine too.
        refused = urllib.request.Request(
            f"{url}/api/renditions", data=b'{"asset": 1}', headers={"Content-Type": "application/json"}
        )
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(refused, timeout=30)
        assert denied.value.code == 401
    family = _cli(env, "pairs")["pairs"][0]
    assert [(r["width"], r["height"], r["rendition"]["status"]) for r in family["renditions"]] == [(320, 180, "done")]


def test_catalogued_files_are_served_in_ranges(indexed: dict[str, str], tmp_path: Path) -> None:
    with _served(indexed, tmp_path / "logs") as (_, url):
        moment = _get(f"{url}/api/search?q=shot")[1]["results"][0]["moments"][0]
        wanted = urllib.request.Request(f"{url}/api/media/{moment['asset_id']}", headers={"Range": "bytes=10-109"})
        with urllib.request.urlopen(wanted, timeout=30) as response:
            assert response.status == 206 and response.headers["content-range"].startswith("bytes 10-109/")
            assert response.read() == Path(moment["path"]).read_bytes()[10:110]
        for path in ("/api/media/99999", "/api/media/..%2F..%2Fetc%2Fpasswd"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"{url}{path}", timeout=30)
            assert refused.value.code == 404, path


def test_only_catalogued_thumbnails_are_served(indexed: dict[str, str], tmp_path: Path) -> None:
    with _served(indexed, tmp_path / "logs") as (_, url):
        moment = _get(f"{url}/api/search?q=shot")[1]["results"][0]["moments"][0]
        good = f"{url}/api/thumbnails/{moment['asset_id']}/{round(moment['frame_s'] * 1000)}"
        with urllib.request.urlopen(good, timeout=30) as response:
            assert response.headers["content-type"] == "image/jpeg"
            assert response.read(3) == b"\xff\xd8\xff"  # a JPEG
        for path in (
            f"/api/thumbnails/99999/{round(moment['frame_s'] * 1000)}",  # no such asset
            f"/api/thumbnails/{moment['asset_id']}/123456789",  # no such moment
            "/api/thumbnails/..%2F..%2F..%2Fetc/passwd",
            "/static/..%2F..%2Fserver.py",
        ):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"{url}{path}", timeout=30)
            assert refused.value.code == 404, path


def test_the_cli_works_when_the_service_is_not_there(indexed: dict[str, str]) -> None:
    home = Path(indexed["FOOTAGE_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    # A service that died and left its announcement, and one configured but not running.
    (home / "server.json").write_text(json.dumps({"url": f"http://127.0.0.1:{_free_port()}", "pid": 2**22 + 1}))
    assert _cli(indexed, "search", "a red circle")["answered_by"] == "this command"
    configured = {**indexed, "FOOTAGE_SERVER_URL": f"http://127.0.0.1:{_free_port()}"}
    assert _cli(configured, "search", "a red circle")["answered_by"] == "this command"


def _outside_address() -> str | None:
    """An address of this machine that is not loopback, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
            address = str(s.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_strangers_need_the_token(indexed: dict[str, str], tmp_path: Path) -> None:
    refused = runner.invoke(app, ["serve", "--host", "0.0.0.0"], env=indexed)
    assert refused.exit_code == 2 and "give a token" in refused.output
    outside = _outside_address()
    if outside is None:
        pytest.skip("this machine has no address but loopback to come from")
    token = os.urandom(8).hex()
    with _served(indexed, tmp_path / "logs", "--host", "0.0.0.0", "--token", token) as (_, url):
        port = url.rsplit(":", 1)[1]
        assert _get(f"{url}/api/health")[0] == 200  # this machine: no token needed
        status, answer = _get(f"http://{outside}:{port}/api/search?q=a+red+circle")
        assert status == 401 and "token" in answer["error"]
        assert _get(f"http://{outside}:{port}/api/search?q=a+red+circle", token="wrong")[0] == 401
        status, answer = _get(f"http://{outside}:{port}/api/search?q=a+red+circle", token=token)
        assert status == 200 and len(answer["results"]) == 2
        # A browser there opens the page once with the token and then holds it as a cookie.
        with pytest.raises(urllib.error.HTTPError) as shut:
            urllib.request.urlopen(f"http://{outside}:{port}/", timeout=30)
        assert shut.value.code == 401
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        with opener.open(f"http://{outside}:{port}/?token={token}", timeout=30) as page:
            assert page.url == f"http://{outside}:{port}/" and b"footage-token" in page.read()
        with opener.open(f"http://{outside}:{port}/api/search?q=a+red+circle", timeout=30) as found:
            assert len(json.loads(found.read())["results"]) == 2


def test_watch_serves_too(catalog: Catalog, tiny_clip: str, tmp_path: Path) -> None:
    root = tmp_path / "incoming"
    root.mkdir()
    write_clip(root / "a.mp4", Clip(shots=(1.0, 1.0)))
    env = catalog_env(catalog, tmp_path / "home", FOOTAGE_CLIP_MODEL=tiny_clip)
    port = _free_port()
    service = start(env, tmp_path / "logs", "watch", str(root), "--settle", "0.3", "--serve", "--port", str(port))
    url = f"http://127.0.0.1:{port}"

    def found() -> bool:
        assert service.process.poll() is None, service.err.read_text()
        try:
            status, answer = _get(f"{url}/api/search?q=a+red+circle")
        except OSError:
            return False
        return status == 200 and len(answer["results"]) == 1

    try:
        wait_for(found, timeout=120, interval=0.3)  # indexed by the watcher, answered by its service
        assert _cli(env, "search", "a red circle")["answered_by"].startswith("footage serve")
    finally:
        code, out, err = service.stop()
    assert code == 0 and "Stopped." in out, err
    assert not (tmp_path / "home" / "server.json").exists()


def test_the_page_notes_tags_and_builds_a_selection(indexed: dict[str, str], tmp_path: Path) -> None:
    """Words on the page: a file named in the query first with its evidence; a note and a tag
    added (searchable at once, with who), a tag taken off; ticked moments into a selection,
    reordered and exported in its order."""
    env = indexed
    with _searched(env, tmp_path / "logs", "final v2") as (page, url):
        first = page.locator(".hit >> nth=0")
        assert "clip (final) [v2].mp4" in first.inner_text() and "words: final, v2" in first.inner_text()
        page.fill("#author", "maria")
        first.locator("details.notes summary").click()
        first.locator(".note-text").fill("hero shot, client liked it")
        first.locator(".note-form button").click()
        page.wait_for_function("document.querySelector('.hit .annotations').textContent.includes('hero shot')")
        first.locator(".note-text").fill("#keeper #drone")
        first.locator(".note-form button").click()
        page.wait_for_function("document.querySelectorAll('.hit .annotations li.tag').length === 2")
        assert "— maria" in first.locator(".annotations").inner_text()
        noted = _cli(env, "search", "note:client", "--words-only")
        assert [Path(r["master"]["path"]).name for r in noted["results"]] == ["clip (final) [v2].mp4"]
        first.locator(".annotations li.tag >> nth=0").locator(".untag").click()
        page.wait_for_function("document.querySelectorAll('.hit .annotations li.tag').length === 1")
        assert _cli(env, "search", "tag:keeper", "--words-only")["results"] == []
        first.locator(".annotations li.note .unnote").click()
        page.wait_for_function("document.querySelectorAll('.hit .annotations li.note').length === 0")
        assert _cli(env, "search", "note:client", "--words-only")["results"] == []

        # Two moments of different files into a selection, then the second one first.
        boxes = page.locator(".moment .choose")
        chosen = [boxes.nth(0).get_attribute("value"), boxes.nth(boxes.count() - 1).get_attribute("value")]
        boxes.nth(0).check()
        boxes.nth(boxes.count() - 1).check()
        page.fill("#selection-name", "opening")
        page.click("#add-to-selection")
        page.wait_for_function("document.getElementById('status').textContent.startsWith('Added 2')")
        page.click("#show-selections")
        page.click(".open-selection")
        page.wait_for_selector(".hit .move-down")
        page.locator(".hit >> nth=0").locator(".move-down").click()

        def order() -> list[str]:
            status, answer = _get(f"{url}/api/selections/opening")
            assert status == 200, answer
            return [f"{e['asset_id']}@{round(e['at_s'] * 1000)}" for e in answer["entries"]]

        wait_for(lambda: order() == chosen[::-1], timeout=30, interval=0.2)
        page.wait_for_selector(".hit .move-down")  # shown again in the new order
        status, answer = _get(f"{url}/api/selections/opening")
        assert {e["author"] for e in answer["entries"]} == {"maria"}
        with page.expect_download() as download:
            page.click(".export-otio")
        clips = list(otio.adapters.read_from_file(str(download.value.path()), adapter_name="otio_json").find_clips())
        assert [f"{c.metadata['footage']['asset_id']}" for c in clips] == [o.split("@")[0] for o in order()]


def test_every_version_plays_in_the_browser(catalog: Catalog, tiny_clip: str, tmp_path: Path) -> None:
    """ProRes 422 HQ, DNxHR, interlaced MPEG-2 masters and a 10-bit HEVC rendition play through
    their proxies; an H.264 master plays itself."""
    media = tmp_path / "media"
    media.mkdir()
    masters = {
        "prores": write_clip(
            media / "A001 HQ.mov",
            Clip(width=320, height=180, codec="prores_ks", pix_fmt="yuv422p10le", options={"profile": "3"}, audio=True),
        ),
        "dnxhr": write_clip(
            media / "B001.mov",
            Clip(width=320, height=180, codec="dnxhd", pix_fmt="yuv422p", options={"profile": "dnxhr_sq"}),
        ),
        "mpeg2": write_clip(
            media / "tape.mov",
            Clip(width=720, height=576, codec="mpeg2video", interlaced=True, sar=Fraction(16, 15), audio=True),
        ),
        "h264": write_clip(media / "phone.mp4", Clip(width=320, height=180, audio=True)),
    }
    unproxied = write_clip(media / "C002.mov", Clip(width=320, height=180, codec="prores_ks", pix_fmt="yuv422p10le"))
    env = catalog_env(catalog, tmp_path / "home", FOOTAGE_CLIP_MODEL=tiny_clip)
    assert runner.invoke(app, ["index", str(media)], env=env).exit_code == 0
    weights = write_tiny_compact(tmp_path / "tiny-x2.pth", scale=2)
    upscaled = runner.invoke(
        app,
        ["upscale", str(masters["prores"]), "--to", "2x", "-m", str(weights), "--wait", "--temporal", "off"],
        env=env,
    )
    assert upscaled.exit_code == 0, upscaled.output
    rendition = _cli(env, "pairs")["pairs"][0]["renditions"][0]
    assert (rendition["video_codec"], rendition["width"]) == ("hevc", 640)
    # Rendered by the command itself (no worker runs), the rendition got its proxy there too.
    assert rendition["proxy"]["status"] == "done" and rendition["proxy"]["ai_processed"] is True
    made = _cli(env, "proxy", *(str(masters[n]) for n in ("prores", "dnxhr", "mpeg2")))["proxies"]
    assert len(made) == 3 and {m["outcome"] for m in made} == {"made"}
    ids = {name: _cli(env, "show", str(path))["asset"]["id"] for name, path in masters.items()}
    ids["hevc rendition"] = rendition["asset_id"]
    from playwright.sync_api import sync_playwright

    chromium = _chromium()
    with _served(env, tmp_path / "logs") as (_, url), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            for name, asset_id in ids.items():
                master_id = ids["prores"] if name == "hevc rendition" else asset_id
                page.goto(f"{url}/#family/{master_id}/1000")
                figure = f".pairs .version.{'rendition' if name == 'hevc rendition' else 'master'}"
                page.click(f"{figure} .play")
                # Plays: a picture (videoWidth > 0) and time running past the moment's start within 3 s.
                page.wait_for_function(
                    "document.querySelector('.player') && document.querySelector('.player').readyState >= 2"
                    " && document.querySelector('.player').videoWidth > 0"
                    " && document.querySelector('.player').currentTime > 1.05",
                    timeout=3000,
                )
                source = page.get_attribute(".player", "data-source")
                assert source == ("original" if name == "h264" else "proxy"), name
                assert "playing the" in page.inner_text(".player-facts")
            # Told to try the HEVC file itself, Chromium opens it with audio and no picture (no
            # error event): the page sees the missing picture and plays the proxy instead.
            page.goto(f"{url}/#family/{ids['prores']}/1000")
            page.reload()  # the same address as the last version's: its player is still there
            page.wait_for_selector(".pairs .version.rendition .play")
            page.evaluate(
                """async (id) => {
                    const details = await (await fetch(`/api/assets/${id}`)).json();
                    const box = document.createElement("div");
                    document.querySelector(".pairs .version.rendition").append(box);
                    play(box, details.renditions[0], 1000, "original");
                }""",
                ids["prores"],
            )
            page.wait_for_function(
                "document.querySelector('.player[data-source=proxy]') &&"
                " document.querySelector('.player[data-source=proxy]').videoWidth > 0",
                timeout=5000,
            )
            # A version with neither a playable file nor a proxy says so and offers to make one.
            page.goto(f"{url}/#family/{_cli(env, 'show', str(unproxied))['asset']['id']}/500")
            page.click(".pairs .version.master .play")
            assert "cannot play prores, and this version has no proxy yet" in page.inner_text(".cannot-play")
            page.click(".make-proxy")
            page.wait_for_function("document.querySelector('.proxy-status').textContent.startsWith('Proxy queued')")
            queued = [j for j in _cli(env, "jobs")["jobs"] if j["task"] == "footage.proxy"]
            assert len(queued) == 1 and queued[0]["status"] == "queued" and queued[0]["what"].startswith("proxy ")
        finally:
            browser.close()


def test_the_players_timecode_counts_as_search_does(catalog: Catalog, tiny_clip: str, tmp_path: Path) -> None:
    """The page's timecode under the player (timecodeAt) is the one search prints for the same
    time: drop-frame at 29.97 and 59.94 across minute and ten-minute boundaries, non-drop where
    the file's own timecode says so, and at other rates."""
    from playwright.sync_api import sync_playwright

    from catalog.timecode import timecode

    ntsc, ntsc_60 = Fraction(30000, 1001), Fraction(60000, 1001)
    cases = [
        (ntsc, "00:00:00;00", frame)
        for frame in (0, 1, 1799, 1800, 1801, 3597, 3598, 17981, 17982, 17983, 107891, 107892)
    ]
    cases += [(ntsc, "00:00:59;28", 2), (ntsc, "00:09:59;29", 1), (ntsc, "01:00:00.00", 1800)]
    cases += [(ntsc, "01:00:00:00", frame) for frame in (1799, 1800, 17982)]  # non-drop at 29.97
    cases += [(ntsc_60, "00:00:00;00", frame) for frame in (3599, 3600, 35963, 35964, 215784)]
    cases += [(Fraction(25), "10:00:00:00", 1500), (Fraction(24000, 1001), "00:59:59:23", 1)]
    env = catalog_env(catalog, tmp_path / "home", FOOTAGE_CLIP_MODEL=tiny_clip)
    chromium = _chromium()
    with _served(env, tmp_path / "logs") as (_, url), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(url)
            for rate, start, frame in cases:
                seconds = float(frame / rate)
                shown = page.evaluate(
                    "([rate, start, seconds]) => timecodeAt({timecode: start, frame_rate: rate}, seconds)",
                    [str(rate), start, seconds],
                )
                assert shown == timecode(seconds, rate, start), (rate, start, frame)
        finally:
            browser.close()


def test_a_family_of_five_versions_reads_well(indexed: dict[str, str], tmp_path: Path) -> None:
    env = indexed
    master = str(tmp_path / "media" / "clip (final) [v2].mp4")
    renders = tmp_path / "renders"
    renders.mkdir()
    for i, (width, height) in enumerate(((320, 180), (480, 270), (640, 360), (1280, 720))):
        made = write_clip(renders / f"clip.v{i}.mp4", Clip(width=width, height=height, shots=(1.0, 1.0)))
        assert runner.invoke(app, ["index", str(made)], env=env).exit_code == 0
        assert runner.invoke(app, ["link", str(made), "--to", master], env=env).exit_code == 0
    master_id = _cli(env, "show", master)["asset"]["id"]
    with _searched(env, tmp_path / "logs", "a red circle") as (page, url):
        page.goto(f"{url}/#family/{master_id}/500")
        page.wait_for_function("document.querySelectorAll('.pairs .version img').length === 5")
        page.wait_for_function("[...document.querySelectorAll('#family img')].every(i => i.complete)")
        # Every version keeps a column of its own (no sliver), and the page does not overflow.
        widths = page.eval_on_selector_all(".pairs .version", "all => all.map(f => f.getBoundingClientRect().width)")
        assert len(widths) == 5 and min(widths) >= 200
        assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
        captions = page.eval_on_selector_all(".pairs figcaption", "all => all.map(c => c.textContent)")
        assert len(set(captions)) == 5
        # The wipe compares any two: the 1280x720 version over the 480x270 one.
        options = page.eval_on_selector_all("#wipe-right option", "all => all.map(o => o.textContent)")
        assert len(options) == 5
        big = next(i for i, o in enumerate(options) if "1280x720" in o)
        small = next(i for i, o in enumerate(options) if "480x270" in o)
        page.select_option("#wipe-right", str(big))
        page.select_option("#wipe-left", str(small))
        assert page.eval_on_selector(".stage .under", "i => i.style.width") == "1280px"
        assert "clip.v1.mp4" in page.eval_on_selector(".stage .under", "i => i.alt")  # the 480x270 one
        assert "1280x720" in page.inner_text(".wipe .caption")
        # Hovering the strip shows its moments' frames, large.
        page.hover(".strip img >> nth=0")
        assert page.is_visible(".scrub img")
