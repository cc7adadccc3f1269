"""Several hosts, one catalog: a database host, a watch host and a render host on one machine.

Each host is a network namespace the test makes (veth pairs into a bridge on a private
test subnet); the render host also has a mount namespace of its own where the share
appears at another path. The catalog server runs in the database host and the others
reach it only over their links. A fourth host mounts a wrong folder at the share's path:
it takes no job and says why.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from media import Clip, write_clip
from netns import free_subnet, ip, remove
from polling import wait_for
from services import Service, catalog_env
from tiny_models import write_tiny_compact

HOSTS = ("db", "a", "b", "c")
TOKEN = "hosts-test-token"


@contextmanager
def _network() -> Iterator[tuple[str, dict[str, tuple[str, str]]]]:
    """A bridge in this namespace (``subnet.1``, a free test subnet) and a namespace per host
    linked to it: (subnet, {host: (namespace, address)}). Everything made is removed,
    whatever happens."""
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("unshare") is None:
        pytest.skip("network and mount namespaces need root, iproute2 and unshare (CI runs as root)")
    subnet, tag = free_subnet(), os.getpid()
    bridge = f"fbr{tag}"
    made: dict[str, tuple[str, str]] = {}
    links: list[str] = []
    try:
        ip("link", "add", bridge, "type", "bridge")
        links.append(bridge)
        ip("addr", "add", f"{subnet}.1/24", "dev", bridge)
        ip("link", "set", bridge, "up")
        for i, host in enumerate(HOSTS):
            name, outside, inside = f"footage-{host}-{tag}", f"fh{i}-{tag}", f"fn{i}-{tag}"
            ip("netns", "add", name)
            made[host] = (name, f"{subnet}.{i + 2}")
            ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            links.append(outside)
            ip("link", "set", inside, "netns", name)
            ip("link", "set", outside, "master", bridge)
            ip("link", "set", outside, "up")
            ip("netns", "exec", name, "ip", "addr", "add", f"{made[host][1]}/24", "dev", inside)
            ip("netns", "exec", name, "ip", "link", "set", inside, "up")
            ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
    except subprocess.CalledProcessError as exc:
        _remove(made, links)
        pytest.skip(f"cannot make network namespaces here: {exc.stderr.decode().strip()}")
    try:
        yield subnet, made
    finally:
        _remove(made, links)


def _remove(made: dict[str, tuple[str, str]], links: list[str]) -> None:
    for name, _ in made.values():
        remove("netns", name)
    for link in reversed(links):
        remove("link", link)


def _command(namespace: str, args: list[str], bind: tuple[Path, Path] | None) -> list[str]:
    """``footage ARGS`` in ``namespace``; with ``bind`` (share, path) in a mount namespace of
    its own where the share is mounted at that path (seen there only)."""
    footage = [sys.executable, "-m", "cli", *args]
    if bind is None:
        return ["ip", "netns", "exec", namespace, *footage]
    script = f"mount --bind {shlex.quote(str(bind[0]))} {shlex.quote(str(bind[1]))} && exec {shlex.join(footage)}"
    return ["ip", "netns", "exec", namespace, "unshare", "--mount", "--propagation", "private", "sh", "-c", script]


def _run(namespace: str, env: dict[str, str], *args: str, bind: tuple[Path, Path] | None = None) -> str:
    done = subprocess.run(_command(namespace, list(args), bind), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"footage {' '.join(args)}: {done.stderr}"
    return done.stdout


def _start(
    stack: ExitStack, namespace: str, env: dict[str, str], logs: Path, *args: str, bind: tuple[Path, Path] | None = None
) -> Service:
    logs.mkdir(parents=True, exist_ok=True)
    out, err = logs / f"{args[0]}-{len(list(logs.iterdir()))}.out", logs / f"{args[0]}-{len(list(logs.iterdir()))}.err"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        process = subprocess.Popen(
            _command(namespace, list(args), bind), env=env, stdout=stdout, stderr=stderr, text=True
        )
    service = Service(process, out, err)

    def stop() -> None:
        if process.poll() is None:
            service.stop()

    stack.callback(stop)
    return service


def _http(url: str, body: dict[str, object] | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json", **(headers or {})},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - the test's own namespace
        return response.status, response.read()


def _metric(text: str, name: str, labels: str = "") -> float:
    for line in text.splitlines():
        if line.startswith(f"{name}{labels} ") or (not labels and line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_three_hosts_one_catalog(tiny_clip: str, tmp_path: Path) -> None:
    share, renditions, wrong = tmp_path / "nas", tmp_path / "renditions", tmp_path / "wrong-nas"
    b_path = tmp_path / "b-view" / "data" / "footage"  # where host b has the share: empty outside its namespace
    for folder in (share / "day1", renditions, wrong, b_path):
        folder.mkdir(parents=True)
    write_clip(wrong / "stranger.mp4", Clip(width=160, height=90, shots=(1.0,)))
    model = write_tiny_compact(tmp_path / "tiny.pth")
    logs = tmp_path / "logs"
    with _network() as (subnet, hosts), ExitStack() as stack:
        (db_ns, db_at), (a_ns, a_at), (b_ns, b_at), (c_ns, _) = (hosts[h] for h in HOSTS)
        server = _start(
            stack, db_ns, catalog_env(None, tmp_path / "db-home"), logs, "db", "server", str(tmp_path / "catalog"),
            "--listen", db_at, "--port", "5432", "--allow", f"{subnet}.0/24",
        )  # fmt: skip

        urls: list[str] = []

        def announced() -> bool:
            assert server.process.poll() is None, server.err.read_text()
            lines = server.out.read_text().splitlines()
            urls.extend(line.split("=", 1)[1] for line in lines if "DATABASE_URL=" in line)
            return bool(urls)

        wait_for(announced, timeout=180, interval=0.3)
        url = urls[0]
        assert f"@{db_at}:5432/" in url

        def env(host: str, **extra: str) -> dict[str, str]:
            return catalog_env(
                None, tmp_path / f"home-{host}", FOOTAGE_DATABASE_URL=url, FOOTAGE_HOST=host,
                FOOTAGE_CLIP_MODEL=tiny_clip, FOOTAGE_DEVICE="cpu", **extra,
            )  # fmt: skip

        b_bind = (share, b_path)
        # Set-up, as a newcomer types it: storages added on a, mounted on b where it has them.
        _run(a_ns, env("a"), "storage", "add", "nas", str(share))
        _run(a_ns, env("a"), "storage", "add", "renditions", str(renditions))
        _run(b_ns, env("b"), "storage", "mount", "nas", str(b_path), bind=b_bind)
        _run(b_ns, env("b"), "storage", "mount", "renditions", str(renditions), bind=b_bind)

        watch = _start(
            stack, a_ns, env("a"), logs, "watch", str(share), "--settle", "0.3", "-q", "index",
            "--serve", "--host", a_at, "--port", "8765", "--token", TOKEN,
        )  # fmt: skip
        render = _start(stack, b_ns, env("b"), logs, "worker", "-q", "render", "--metrics", f"{b_at}:9464", bind=b_bind)
        wrong_host = _start(stack, c_ns, env("c", FOOTAGE_STORAGE_NAS=str(wrong)), logs, "worker")

        engine = sa.create_engine(url)
        stack.callback(engine.dispose)

        def one(sql: str, **params: object) -> object:
            with engine.connect() as conn:
                return conn.execute(sa.text(sql), params).scalar()

        clip = write_clip(share / "day1" / "harbour.mp4", Clip(width=320, height=180, shots=(1.0, 1.0)))
        wait_for(lambda: one("SELECT status FROM assets WHERE rel_path = 'day1/harbour.mp4'") == "indexed", timeout=180)
        master_id = one("SELECT id FROM assets WHERE rel_path = 'day1/harbour.mp4'")

        # A rendition asked for on a, by the CLI and by the page; b renders both.
        asked = json.loads(_run(a_ns, env("a"), "upscale", str(clip), "--to", "2x", "-m", str(model), "--json"))
        status, body = _http(
            f"http://{a_at}:8765/api/renditions",
            {"asset": master_id, "target": "2x", "model": str(model), "temporal": False},
        )
        assert status == 200
        from_page = json.loads(body)
        ids = [asked["rendition_id"], from_page["rendition_id"]]
        assert ids[0] != ids[1]

        def rendered() -> bool:
            for process in (watch, render):
                assert process.process.poll() is None, process.err.read_text()
            indexed = one(
                "SELECT count(*) FROM renditions r JOIN assets f ON f.id = r.rendition_asset_id"
                " WHERE r.id = ANY(:ids) AND r.status = 'done' AND f.status = 'indexed'",
                ids=ids,
            )
            return indexed == 2

        wait_for(rendered, timeout=400, interval=1.0)
        with engine.connect() as conn:
            by_host = conn.execute(
                sa.text(
                    "SELECT j.task_name, w.host, j.queue_name FROM procrastinate_jobs j"
                    " JOIN worker_queues w ON w.worker_id = j.worker_id WHERE j.status = 'succeeded'"
                )
            ).all()
            # (The five-minutely orphan check, on no storage, any host may run.)
            took = conn.execute(
                sa.text(
                    "SELECT count(*) FROM procrastinate_jobs j JOIN worker_queues w ON w.worker_id = j.worker_id"
                    " WHERE w.host = 'c' AND j.task_name IN ('footage.index_file', 'footage.render')"
                )
            ).scalar()
        renders = sorted((queue, host) for task, host, queue in by_host if task == "footage.render")
        assert renders == [("render@nas", "b"), ("render@nas", "b")]
        assert {(q, h) for t, h, q in by_host if t == "footage.index_file"} == {
            ("index@nas", "a"),
            ("render@renditions", "b"),
        }
        assert took == 0

        # a's page lists both versions at a's paths, plays the rendition (a range request)
        # and shows the thumbnails b wrote.
        status, body = _http(f"http://{a_at}:8765/api/pairs")
        (family,) = json.loads(body)["pairs"]
        assert family["master"]["path"] == str(clip)
        versions = {v["rendition"]["rendition_id"]: v for v in family["renditions"]}
        made = Path(versions[ids[0]]["path"])
        assert made.parent == renditions and made.is_file()
        status, body = _http(
            f"http://{a_at}:8765/api/media/{versions[ids[0]]['asset_id']}", headers={"Range": "bytes=0-99"}
        )
        assert status == 206 and body == made.read_bytes()[:100]
        shown_a = json.loads(_run(a_ns, env("a"), "show", str(versions[ids[0]]["asset_id"]), "--json"))
        moment = next(iter(shown_a["moments_by_model"].values()))[0]
        assert moment["thumbnail"] and Path(moment["thumbnail"]).is_relative_to(renditions)
        status, body = _http(
            f"http://{a_at}:8765/api/thumbnails/{versions[ids[0]]['asset_id']}/{round(moment['frame_s'] * 1000)}"
        )
        assert status == 200 and body[:2] == b"\xff\xd8"

        # `show` says each host's own path.
        assert json.loads(_run(a_ns, env("a"), "show", str(master_id), "--json"))["asset"]["path"] == str(clip)
        on_b = json.loads(_run(b_ns, env("b"), "show", str(master_id), "--json", bind=b_bind))
        assert on_b["asset"]["path"] == str(b_path / "day1" / "harbour.mp4")

        # Metrics: b counts the frames it rendered, a the file it indexed and the queue.
        status, body = _http(f"http://{b_at}:9464/metrics")
        assert _metric(body.decode(), "footage_frames_rendered_total") > 0
        status, body = _http(f"http://{a_at}:8765/metrics")
        scraped = body.decode()
        assert _metric(scraped, "footage_files_indexed_total", '{outcome="indexed"}') == 1
        assert _metric(scraped, "footage_jobs", '{queue="render@nas",state="succeeded"}') == 2

        for process in (wrong_host, render, watch):
            code, out, err = process.stop()
            assert code == 0, err
        said = " ".join(wrong_host.out.read_text().split())
        assert f"Not serving storage nas: {wrong} has no .footage-storage" in said
        assert "Taking no renders" in said
        print(
            f"hosts: db {db_at}, a {a_at} (watch --serve, nas at {share}), b {b_at} (worker -q render, nas at"
            f" {b_path} in its own mount namespace), c (nas at a wrong folder): 1 file indexed on a,"
            f" 2 renditions asked on a rendered on b, c took {took} jobs"
        )
