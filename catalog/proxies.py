"""Proxy records: which version gets one, the one proxy of a version, and where it stands.

Every change of a proxy's status happens here. A proxy is asked for once per version: asking
again while it is queued, running or done returns nothing to do; a failed one is asked anew.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import Any

import procrastinate
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from catalog.database import Catalog
from catalog.errors import ConfigurationError
from catalog.jobs import defer_proxy
from catalog.names import rendition_name
from catalog.results import ProxyInfo
from catalog.storages import Mounts, mounts_of
from catalog.tables import Asset, Proxy, ProxyStatus

S = ProxyStatus
# When a version gets a proxy without being asked: ``auto`` for renditions and for masters the
# tested browsers cannot play, ``all`` for every version, ``none`` only when asked for.
PROXY_MODES = ("auto", "all", "none")
DEFAULT_MODE = "auto"
# The folder of the renditions storage proxies are written to (visible: editors relink to it).
PROXY_FOLDER = "proxies"
PROXY_SUFFIX = ".mp4"

# What Debian's Chromium (the browser the tests drive) decodes: H.264 8- and 10-bit, VP8, VP9 and
# AV1 in MP4/QuickTime, WebM/Matroska or Ogg. HEVC, ProRes, DNxHD/HR, MPEG-2 do not play, nor
# does anything in MXF, MPEG-TS or AVI.
_BROWSER_CODECS = frozenset({"h264", "vp8", "vp9", "av1"})
_BROWSER_CONTAINERS = ("mov", "mp4", "matroska", "webm", "ogg")


def check_mode(mode: str) -> str:
    if mode not in PROXY_MODES:
        raise ConfigurationError(f"FOOTAGE_PROXIES must be one of {', '.join(PROXY_MODES)}, not {mode!r}")
    return mode


def browser_plays(asset: Asset) -> bool:
    """Whether the tested browsers decode the file itself (by its probed codec and container)."""
    container = (asset.container or "").split(",")
    return asset.video_codec in _BROWSER_CODECS and any(c in _BROWSER_CONTAINERS for c in container)


def wants_proxy(asset: Asset, mode: str) -> bool:
    """Whether a version gets a proxy without being asked: every rendition (a 4K HEVC file plays
    almost nowhere) and masters no tested browser plays, unless the mode says all or none."""
    if mode == "none":
        return False
    return mode == "all" or asset.kind == "rendition" or not browser_plays(asset)


def proxy_name(source: Asset) -> str:
    """``proxies/<stem>.<asset id>.proxy.h264.mp4``: readable next to its source's name, and one
    per version even where two sources share a name."""
    stem = PurePosixPath(source.rel_path).stem
    return f"{PROXY_FOLDER}/{rendition_name(stem, str(source.id), 'proxy', 'h264', PROXY_SUFFIX)}"


def _stale(proxy: Proxy, session: Session) -> bool:
    """A made proxy of an older content of its file (the file was replaced and indexed anew)."""
    if proxy.status != S.DONE:
        return False
    made_from = proxy.provenance.get("made_from", {}).get("content_hash")
    current = session.scalar(sa.select(Asset.content_hash).where(Asset.id == proxy.source_id))
    return made_from is not None and current is not None and made_from != current


def request(session: Session, source_id: int) -> Proxy | None:
    """Ask for the proxy of a version: the record to queue a job for, or None when one is
    queued, running or made from the file's present content already."""
    created = session.execute(
        insert(Proxy).values(source_id=source_id).on_conflict_do_nothing().returning(Proxy.id)
    ).scalar_one_or_none()
    proxy = session.execute(sa.select(Proxy).where(Proxy.source_id == source_id).with_for_update()).scalar_one()
    if created is None and proxy.status != S.FAILED and not _stale(proxy, session):
        return None
    proxy.status, proxy.error, proxy.progress = S.QUEUED.value, None, 0.0
    return proxy


def set_job(session: Session, proxy_id: int, job_id: int | None) -> None:
    session.execute(sa.update(Proxy).where(Proxy.id == proxy_id).values(job_id=job_id))


def start(session: Session, proxy_id: int) -> Asset | None:
    """Mark a proxy running (another attempt) and return its source; None when it is done
    already (a job run twice makes it once) or its source is gone."""
    proxy = session.execute(sa.select(Proxy).where(Proxy.id == proxy_id).with_for_update()).scalar_one_or_none()
    if proxy is None or proxy.status == S.DONE:
        return None
    source = session.get(Asset, proxy.source_id)
    if source is None:
        return None
    proxy.status, proxy.error, proxy.progress = S.RUNNING.value, None, 0.0
    proxy.attempts += 1
    return source


def record_progress(session: Session, proxy_id: int, fraction: float) -> None:
    value = min(0.999, max(0.0, fraction))
    session.execute(sa.update(Proxy).where(Proxy.id == proxy_id, Proxy.status == S.RUNNING).values(progress=value))


def finish(session: Session, proxy_id: int, storage_id: int, rel_path: str, facts: dict[str, Any]) -> None:
    """Record a written proxy: its place and what it is (``facts``: width, height, video_codec,
    size_bytes, duration_s, provenance)."""
    proxy = session.get(Proxy, proxy_id, with_for_update=True)
    assert proxy is not None
    proxy.status, proxy.error, proxy.progress = S.DONE.value, None, 1.0
    proxy.storage_id, proxy.rel_path = storage_id, rel_path
    for key, value in facts.items():
        setattr(proxy, key, value)
    proxy.finished_at = sa.func.now()


def fail(session: Session, proxy_id: int, error: str) -> None:
    session.execute(
        sa.update(Proxy)
        .where(Proxy.id == proxy_id, Proxy.status != S.DONE)
        .values(status=S.FAILED.value, error=error, finished_at=sa.func.now())
    )


def requeue(session: Session, proxy_id: int) -> None:
    """A running proxy whose attempt will be made again (its worker went away, a retry)."""
    session.execute(
        sa.update(Proxy).where(Proxy.id == proxy_id, Proxy.status == S.RUNNING).values(status=S.QUEUED.value)
    )


def of_versions(session: Session, source_ids: Iterable[int]) -> dict[int, Proxy]:
    ids = sorted(set(source_ids))
    if not ids:
        return {}
    return {p.source_id: p for p in session.scalars(sa.select(Proxy).where(Proxy.source_id.in_(ids)))}


def info(proxy: Proxy, source_kind: str, mounts: Mounts) -> ProxyInfo:
    path = mounts.shown(proxy.storage_id, proxy.rel_path) if proxy.storage_id and proxy.rel_path else None
    return ProxyInfo(
        proxy_id=proxy.id,
        status=proxy.status,
        path=path,
        width=proxy.width,
        height=proxy.height,
        video_codec=proxy.video_codec,
        size_bytes=proxy.size_bytes,
        error=proxy.error,
        ai_processed=source_kind == "rendition",
    )


def missing(session: Session, mode: str) -> list[Asset]:
    """Indexed versions that want a proxy (by ``mode``; ``none`` counts as ``auto`` here: they are
    asked for by hand) and have none queued, running or done."""
    taken = sa.select(Proxy.source_id).where(Proxy.status != S.FAILED)
    candidates = session.scalars(
        sa.select(Asset).where(Asset.status == "indexed", Asset.id.not_in(taken)).order_by(Asset.id)
    ).all()
    wanted = "auto" if mode == "none" else mode
    return [a for a in candidates if wants_proxy(a, wanted)]


def ask(catalog: Catalog, app: procrastinate.App, source_id: int) -> int | None:
    """Record and queue the proxy of a version (for render workers serving its storage); the
    proxy's id, or None when it is queued, running or made already."""
    with catalog.session() as session:
        proxy = request(session, source_id)
        if proxy is None:
            return None
        source = session.get(Asset, source_id)
        assert source is not None
        proxy_id, storage = proxy.id, mounts_of(session).storage(source.storage_id)
    job_id = defer_proxy(app, proxy_id, storage)
    with catalog.session() as session:
        set_job(session, proxy_id, job_id)
    return proxy_id


def ask_if_wanted(catalog: Catalog, app: procrastinate.App, asset_id: int, mode: str) -> int | None:
    """After a version is indexed: its proxy, queued when the mode wants one for it."""
    with catalog.session() as session:
        asset = session.get(Asset, asset_id)
        wanted = asset is not None and wants_proxy(asset, mode)
    return ask(catalog, app, asset_id) if wanted else None
