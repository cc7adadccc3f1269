"""Running footage as a service: Prometheus metrics that count what happened, liveness and
readiness, and logs a collector reads (one JSON object a line)."""

from __future__ import annotations

import json
import re
import socket
import urllib.error
import urllib.request
from pathlib import Path

import sqlalchemy as sa
from media import Clip, write_clip
from polling import wait_for
from services import catalog_env, start

from catalog import Catalog
from catalog.assets import set_root_presence, upsert_root
from catalog.metrics import readiness


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _sample(metrics: str, name: str) -> float | None:
    """The value of one sample (``name`` with its labels, as exposed)."""
    found = re.search(rf"^{re.escape(name)} (\S+)$", metrics, re.MULTILINE)
    return float(found.group(1)) if found else None


def test_a_watch_host_counts_what_it_did_and_logs_json(catalog: Catalog, tiny_clip: str, tmp_path: Path) -> None:
    root = tmp_path / "incoming"
    root.mkdir()
    write_clip(root / "harbour.mp4", Clip(shots=(1.0, 1.0)))
    port = _free_port()
    env = catalog_env(catalog, tmp_path / "home", FOOTAGE_CLIP_MODEL=tiny_clip)
    args = ("watch", str(root), "--settle", "0.3", "--metrics", f"127.0.0.1:{port}", "--log-format", "json")
    service = start(env, tmp_path / "logs", *args)
    base = f"http://127.0.0.1:{port}"
    try:

        def indexed() -> bool:
            assert service.process.poll() is None, service.err.read_text()
            try:
                return _sample(_get(f"{base}/metrics")[1], 'footage_files_indexed_total{outcome="indexed"}') == 1.0
            except OSError:
                return False

        wait_for(indexed, timeout=120, interval=0.5)
        metrics = _get(f"{base}/metrics")[1]
        assert _sample(metrics, "footage_index_realtime_factor_count") == 1.0
        assert (_sample(metrics, "footage_index_realtime_factor_sum") or 0) > 0
        # The queue, read from the catalog: the file's index job succeeded, on its storage's queue.
        with catalog.session() as session:
            queue, succeeded = session.execute(
                sa.text(
                    "SELECT queue_name, count(*) FROM procrastinate_jobs"
                    " WHERE task_name = 'footage.index_file' AND status = 'succeeded' GROUP BY queue_name"
                )
            ).one()
        assert queue == f"index@{catalog.mounts.host_storage}" and succeeded == 1
        assert _sample(metrics, f'footage_jobs{{queue="{queue}",state="succeeded"}}') == succeeded
        assert _sample(metrics, "footage_stalled_jobs_recovered_total") == 0.0
        assert _get(f"{base}/health/live")[0] == 200
        status, body = _get(f"{base}/health/ready")
        assert status == 200 and json.loads(body)["checks"] == {"catalog": "ok", "storage": "ok", "mounts": "ok"}
        assert _get(f"{base}/nothing")[0] == 404
    finally:
        code, _, err = service.stop()
    assert code == 0, err
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]  # every line an object
    assert all({"time", "level", "logger", "event"} <= set(entry) for entry in lines)
    [event] = [e for e in lines if e["event"].startswith("indexed:")]
    assert event["path"] == str(root / "harbour.mp4") and isinstance(event["asset_id"], int)


def test_readiness_says_what_is_missing(catalog: Catalog, tmp_path: Path) -> None:
    assert readiness(catalog) == {"ready": True, "checks": {"catalog": "ok", "storage": "ok"}}
    with catalog.session() as session:
        root = upsert_root(session, str(tmp_path / "nas"), polling=False)
        set_root_presence(session, root, there=True, mount_point=True)
        set_root_presence(session, root, there=True, mount_point=False)  # unmounted under it
    found = readiness(catalog, {"model": lambda: "the CLIP model is not loaded yet"})
    assert not found["ready"]
    assert found["checks"]["storage"] == f"offline: {tmp_path / 'nas'}"
    assert found["checks"]["model"] == "the CLIP model is not loaded yet"
