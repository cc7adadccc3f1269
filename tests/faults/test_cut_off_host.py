"""Fault injection: a render host cut off from the catalog mid-render.

The render worker runs in a network namespace of its own and reaches the
database through a veth pair on a private test subnet (the test's own relay
forwards that link to the server's socket). Its link is taken down mid-render
for longer than the stall timeout: another worker takes the rendition over and
finishes it. When the link comes back, the cut-off worker records nothing and
leaves no file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from media import Clip, write_clip
from netns import free_subnet, ip, remove
from polling import wait_for
from services import catalog_env, start
from tiny_models import write_tiny_compact
from typer.testing import CliRunner

from catalog import Catalog
from cli.main import app


@pytest.fixture
def namespace() -> Iterator[tuple[str, str, str]]:
    """A network namespace linked to this one by a veth pair on a free test subnet:
    (its name, its end of the link, the address of this namespace's end)."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2 (CI runs as root)")
    subnet, pid = free_subnet(), os.getpid()
    name, host_if, ns_if = f"footage-{pid}", f"fh{pid}", f"fn{pid}"
    try:
        ip("netns", "add", name)
        ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        ip("link", "set", ns_if, "netns", name)
        ip("addr", "add", f"{subnet}.1/24", "dev", host_if)
        ip("link", "set", host_if, "up")
        ip("netns", "exec", name, "ip", "addr", "add", f"{subnet}.2/24", "dev", ns_if)
        ip("netns", "exec", name, "ip", "link", "set", ns_if, "up")
        ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
    except subprocess.CalledProcessError as exc:
        remove("link", host_if)
        remove("netns", name)
        pytest.skip(f"cannot make a network namespace here: {exc.stderr.decode().strip()}")
    try:
        yield name, ns_if, f"{subnet}.1"
    finally:
        remove("netns", name)  # its veth end goes too
        remove("link", host_if)


class _Relay:
    """A TCP port on the host's end of the link, relayed to the database server's unix socket."""

    def __init__(self, address: str, server_socket: str) -> None:
        self.server_socket = server_socket
        self.listener = socket.create_server((address, 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.stopping = threading.Event()
        self.open: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.server_socket)
            self.open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        for each in [self.listener, *self.open]:
            each.close()


def _rendition(catalog: Catalog, rendition_id: int) -> sa.Row:
    with catalog.session() as s:
        return s.execute(
            sa.text("SELECT status, progress, worker, lease_epoch FROM renditions WHERE id = :id"), {"id": rendition_id}
        ).one()


def test_a_cut_off_render_host_records_nothing(
    catalog: Catalog, tiny_clip: str, tmp_path: Path, namespace: tuple[str, str, str]
) -> None:
    ns, ns_if, host_end = namespace
    url = catalog.engine.url
    server_socket = f"{url.query['host']}/.s.PGSQL.{url.port or 5432}"
    relay = _Relay(host_end, server_socket)
    env = catalog_env(catalog, tmp_path / "home", FOOTAGE_CLIP_MODEL=tiny_clip)
    over_the_link = url.set(host=host_end, port=relay.port, query={}).render_as_string(hide_password=False)
    master = write_clip(tmp_path / "master.mov", Clip(width=320, height=180, shots=(2.0, 2.0)))
    model = write_tiny_compact(tmp_path / "tiny.pth")
    runner = CliRunner()
    assert runner.invoke(app, ["index", str(master)], env=env).exit_code == 0
    queued = json.loads(
        runner.invoke(
            app, ["upscale", str(master), "--to", "2x", "-m", str(model), "--temporal", "off", "--json"], env=env
        ).stdout
    )
    rendition_id, output = queued["rendition_id"], Path(queued["output"])
    logs = tmp_path / "logs"
    logs.mkdir()
    with open(logs / "cut.out", "w") as out, open(logs / "cut.err", "w") as err:
        cut_off = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "cli", "worker", "-q", "render", "--stall-timeout", "2"],
            env={**env, "FOOTAGE_DATABASE_URL": over_the_link},
            stdout=out,
            stderr=err,
        )
    other = None
    try:
        wait_for(lambda: _rendition(catalog, rendition_id).progress > 0.05, timeout=120, interval=0.05)
        ip("netns", "exec", ns, "ip", "link", "set", ns_if, "down")  # the host is cut off
        other = start(env, logs, "worker", "-q", "render", "--stall-timeout", "2")
        wait_for(lambda: _rendition(catalog, rendition_id).status == "done", timeout=240, interval=0.2)
        final = _rendition(catalog, rendition_id)
        ip("netns", "exec", ns, "ip", "link", "set", ns_if, "up")  # and comes back
        cut_err = logs / "cut.err"
        wait_for(lambda: "lost its lease" in " ".join(cut_err.read_text().split()), timeout=180, interval=0.5)
    finally:
        if cut_off.poll() is None:
            cut_off.send_signal(signal.SIGTERM)
        try:
            cut_code = cut_off.wait(timeout=60)
        except subprocess.TimeoutExpired:
            cut_off.kill()
            cut_code = cut_off.wait(timeout=30)
        other_code, _, other_err = other.stop() if other is not None else (None, "", "")
        relay.close()
    said = (logs / "cut.err").read_text()
    assert other is not None and (final.status, final.lease_epoch) == ("done", 2), final
    assert final.worker.endswith(f":{other.process.pid}"), final  # the worker that took over finished it
    assert "Traceback" not in said and cut_code == 0, said
    assert other_code == 0 and "Traceback" not in other_err, other_err
    assert output.exists() and not list(output.parent.glob(".*partial*"))  # no file of the cut-off render
    print("faults: render host cut off mid-render past the stall timeout: taken over, finished once; lost: 0")
