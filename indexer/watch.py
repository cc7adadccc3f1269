"""The watch-folder service: catch-up scan, filesystem events, settling, rescans.

The watcher decides *when* a file is ready and hands it to ``enqueue`` (in
production: a procrastinate job); moves and deletions it records itself,
because they need no decoding. Everything here is safe to call from the
watchdog observer thread and the service loop at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from catalog import Asset, Catalog
from catalog.assets import (
    asset_by_path,
    assets_under,
    mark_missing,
    move_asset,
    move_folder,
    set_root_presence,
    touch_root_scan,
    upsert_root,
)
from catalog.jobs import DATABASE_LOST
from indexer.discover import is_candidate, walk
from indexer.errors import UNREADABLE, MediaError
from indexer.probe import probe

logger = logging.getLogger(__name__)

Enqueue = Callable[[Path, int], None]


@dataclass(frozen=True)
class WatchSettings:
    """Timings in seconds. ``exclude``: folders never taken as masters (footage's renditions)."""

    settle_s: float = 5.0
    rescan_interval_s: float = 1800.0
    poll: bool = False
    poll_interval_s: float = 2.0
    tick_s: float = 0.5
    # A file that settles but does not decode gets this many more settle periods
    # (a stalled copy) before it is indexed anyway and recorded as bad.
    undecodable_retries: int = 3
    exclude: tuple[Path, ...] = ()


@dataclass
class _Pending:
    size: int
    mtime_ns: int
    stable_since: float
    failed_probes: int = 0


@dataclass(frozen=True)
class ScanReport:
    root: Path
    queued: int
    missing: int
    unchanged: int
    offline: bool = False  # unmounted or unreachable: not scanned, nothing marked missing


# How often the service looks whether its database is still there (seconds).
_PING_EVERY_S = 2.0
# Catalogued and filesystem modification times agree within this (seconds):
# the catalog keeps microseconds, some filesystems nanoseconds.
_MTIME_TOLERANCE_S = 1e-3


def _unchanged_since_indexed(asset: Asset | None, st: os.stat_result) -> bool:
    """Whether a catalogued file still has the size and time it was indexed (or failed) with.

    A file that could not be read is never unchanged: reading rights change without
    touching size or time, so every scan tries it again.
    """
    return (
        asset is not None
        and asset.status in ("indexed", "error")
        and UNREADABLE not in (asset.error or "")
        and asset.size_bytes == st.st_size
        and asset.mtime is not None
        and abs(asset.mtime.timestamp() - st.st_mtime) < _MTIME_TOLERANCE_S
    )


def _presence(root: Path) -> dict[str, bool]:
    """What the filesystem says of a watched folder now: whether it is there, and a mount point."""
    try:
        return {"there": root.is_dir(), "mount_point": os.path.ismount(root)}
    except OSError:  # a stale share cannot even be looked at
        return {"there": False, "mount_point": False}


@dataclass
class FolderWatcher:
    catalog: Catalog
    roots: Sequence[Path]
    settings: WatchSettings
    enqueue: Enqueue
    clock: Callable[[], float] = time.monotonic
    _pending: dict[Path, _Pending] = field(default_factory=dict)
    _root_ids: dict[Path, int] = field(default_factory=dict)
    _offline: set[Path] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.roots = [Path(os.path.abspath(r)) for r in self.roots]
        self._excluded = tuple(Path(os.path.abspath(p)) for p in self.settings.exclude)

    # -- roots and paths -------------------------------------------------

    def register_roots(self) -> dict[Path, int]:
        with self.catalog.session() as session:
            for root in self.roots:
                self._root_ids[root] = upsert_root(session, str(root), self.settings.poll)
        self.check_roots()
        return dict(self._root_ids)

    def check_roots(self) -> list[Path]:
        """Look whether each watched folder is there, record it, and return those that came back.

        A folder that went away (a share unmounted, a NAS unreachable) is offline: its
        files are neither missing nor indexed again; they are as they were.
        """
        back = []
        for root, root_id in self._root_ids.items():
            # A storage's folder without its marker (the empty mount point of an unmounted
            # share, another share at that path) is offline too: nothing indexed, nothing missing.
            problem = self.catalog.mounts.mount(self.catalog.mounts.place(root)[0]).problem
            presence = _presence(root)
            presence["there"] = presence["there"] and problem is None
            with self.catalog.session() as session:
                online, changed = set_root_presence(session, root_id, **presence)
            with self._lock:
                (self._offline.discard if online else self._offline.add)(root)
            if changed and online:
                logger.info("watched folder %s is back", root)
                back.append(root)
            elif changed:
                why = problem or "unmounted or unreachable"
                logger.warning("watched folder %s is offline (%s); its files are kept", root, why)
        return back

    def _root_path(self, path: Path) -> Path | None:
        best: Path | None = None
        for root in self._root_ids:
            if path.is_relative_to(root) and (best is None or len(root.parts) > len(best.parts)):
                best = root
        return best

    def _root_of(self, path: Path) -> int | None:
        root = self._root_path(path)
        return self._root_ids[root] if root is not None else None

    def _offline_root(self, path: Path) -> bool:
        """Whether ``path`` lies in a watched folder that is not there now (looked at anew)."""
        root = self._root_path(path)
        if root is None:
            return False
        self.check_roots()
        with self._lock:
            return root in self._offline

    def _watched(self, path: Path) -> bool:
        if any(path.is_relative_to(ex) for ex in self._excluded):
            return False
        if any(part.startswith(".") for part in path.parts[1:-1]):
            return False
        return is_candidate(path) and self._root_of(path) is not None

    # -- catch-up scan ------------------------------------------------------

    def scan(self) -> list[ScanReport]:
        """Compare each root with the catalog: queue new or changed files, mark gone ones missing."""
        if not self._root_ids:
            self.register_roots()
        self.check_roots()
        return [self._scan_root(root, root_id) for root, root_id in self._root_ids.items()]

    def _scan_root(self, root: Path, root_id: int) -> ScanReport:
        with self._lock:
            if root in self._offline:
                return ScanReport(root, 0, 0, 0, offline=True)
        on_disk = {p: p.stat() for p in walk(root, exclude=self._excluded)}
        self.check_roots()  # an unmount during the walk must not read as every file deleted
        with self._lock:
            if root in self._offline:
                return ScanReport(root, 0, 0, 0, offline=True)
        queued = missing = unchanged = 0
        mounts = self.catalog.mounts
        with self.catalog.session() as session:
            known = {mounts.file(a): a for a in assets_under(session, root)}
            for path, asset in known.items():
                if path not in on_disk and asset.status != "missing" and not path.exists():
                    mark_missing(session, str(path))
                    missing += 1
            touch_root_scan(session, root_id)
        now = self.clock()
        for path, st in on_disk.items():
            if _unchanged_since_indexed(known.get(path), st):
                unchanged += 1
                continue
            # Files untouched for a settle period are complete already.
            age = time.time() - st.st_mtime
            stable_since = now - age if age >= self.settings.settle_s else now
            with self._lock:
                self._pending[path] = _Pending(st.st_size, st.st_mtime_ns, stable_since)
            queued += 1
        logger.info("scanned %s: %d to index, %d missing, %d unchanged", root, queued, missing, unchanged)
        return ScanReport(root, queued, missing, unchanged)

    # -- events -------------------------------------------------------------

    def noticed(self, path: Path) -> None:
        """Something may have written to ``path``: wait for it to settle, then index."""
        path = Path(os.path.abspath(path))
        if not self._watched(path):
            return
        try:
            st = path.stat()
        except OSError:
            return
        with self._lock:
            pending = self._pending.get(path)
            if pending is None or (pending.size, pending.mtime_ns) != (st.st_size, st.st_mtime_ns):
                self._pending[path] = _Pending(st.st_size, st.st_mtime_ns, self.clock())

    def deleted(self, path: Path) -> None:
        path = Path(os.path.abspath(path))
        with self._lock:
            self._pending.pop(path, None)
        if path.exists() or self._offline_root(path):
            return  # an unmounted share's files are not deleted
        with self.catalog.session() as session:
            if mark_missing(session, str(path)):
                logger.info("missing: %s", path)
            # A deleted folder: everything under it is gone too.
            for asset in assets_under(session, path):
                gone = self.catalog.mounts.file(asset)
                if asset.status != "missing" and not gone.exists():
                    mark_missing(session, gone)

    def moved(self, src: Path, dest: Path, is_directory: bool = False) -> None:
        src, dest = Path(os.path.abspath(src)), Path(os.path.abspath(dest))
        if is_directory:
            with self.catalog.session() as session:
                count = move_folder(session, str(src), str(dest))
            if count:
                logger.info("moved folder %s -> %s (%d assets)", src, dest, count)
            return
        with self._lock:
            self._pending.pop(src, None)
        if not self._watched(dest):
            self.deleted(src)
            return
        with self.catalog.session() as session:
            asset = asset_by_path(session, str(src))
            taken = asset_by_path(session, str(dest))
            if asset is not None and taken is None:
                move_asset(session, asset.id, str(dest), self._root_of(dest))
                logger.info("moved %s -> %s", src, dest)
                return
            if asset is not None:
                mark_missing(session, str(src))
        self.noticed(dest)

    # -- settling -----------------------------------------------------------

    def tick(self) -> list[Path]:
        """Queue every pending file that has been still for the settle time and decodes."""
        now = self.clock()
        ready: list[Path] = []
        with self._lock:
            items = list(self._pending.items())
        for path, pending in items:
            try:
                st = path.stat()
            except OSError:
                with self._lock:
                    self._pending.pop(path, None)
                continue
            if (st.st_size, st.st_mtime_ns) != (pending.size, pending.mtime_ns):
                with self._lock:
                    self._pending[path] = _Pending(st.st_size, st.st_mtime_ns, now, pending.failed_probes)
                continue
            if now - pending.stable_since < self.settings.settle_s:
                continue
            if not self._decodes(path) and pending.failed_probes < self.settings.undecodable_retries:
                with self._lock:
                    self._pending[path] = _Pending(pending.size, pending.mtime_ns, now, pending.failed_probes + 1)
                continue
            with self._lock:
                if self._pending.get(path) is pending:
                    del self._pending[path]
            ready.append(path)
        self._enqueue(ready, dict(items))
        return ready

    def _enqueue(self, ready: list[Path], pending: dict[Path, _Pending]) -> None:
        """Queue ``ready`` files; when the database is lost, the rest wait here to be queued later."""
        for i, path in enumerate(ready):
            root_id = self._root_of(path)
            if root_id is None:
                continue
            try:
                self.enqueue(path, root_id)
            except DATABASE_LOST:
                with self._lock:
                    for waiting in ready[i:]:
                        self._pending.setdefault(waiting, pending[waiting])
                raise

    @staticmethod
    def _decodes(path: Path) -> bool:
        try:
            probe(path)
        except MediaError:
            return False
        return True

    @property
    def pending(self) -> list[Path]:
        with self._lock:
            return sorted(self._pending)

    # -- the service loop -------------------------------------------------------

    def observer(self) -> BaseObserver:
        observer: BaseObserver = (
            PollingObserver(timeout=self.settings.poll_interval_s) if self.settings.poll else Observer()
        )
        handler = _Events(self)
        with self._lock:
            watchable = [root for root in self.roots if root not in self._offline]
        for root in watchable:  # an offline folder is watched once it is back
            observer.schedule(handler, str(root), recursive=True)
        return observer

    def run(self, stop: threading.Event) -> None:
        """Scan, then follow events until ``stop`` is set; rescan periodically."""
        self.register_roots()
        observer = self.observer()
        observer.start()  # before the scan, so nothing written meanwhile is missed
        try:
            self.scan()
            next_rescan = self.clock() + self.settings.rescan_interval_s
            lost = False
            next_ping = self.clock()
            while not stop.wait(self.settings.tick_s):
                try:
                    if self.clock() >= next_ping:
                        # Noticed here within seconds, the embedded server is started again
                        # before the job queue's connection pools give up waiting.
                        self.catalog.ping()
                        next_ping = self.clock() + _PING_EVERY_S
                        if self.check_roots():
                            # A remounted folder lost its filesystem watches with the unmount:
                            # watch anew, then catch up with what changed while it was away.
                            observer = self._watch_anew(observer)
                            next_rescan = self.clock()
                    self.tick()
                    if self.clock() >= next_rescan:
                        self.scan()
                        next_rescan = self.clock() + self.settings.rescan_interval_s
                    if lost:
                        logger.info("the catalog database is back; files noticed meanwhile are being queued")
                        lost = False
                except DATABASE_LOST as exc:
                    if not lost:
                        logger.warning("the catalog database is unreachable; files noticed meanwhile wait (%s)", exc)
                    lost = True
                    # Deletions and moves seen meanwhile could not be recorded: a scan catches up.
                    next_rescan = self.clock()
                    with contextlib.suppress(Exception):  # still down: the next tick tries again
                        self.catalog.revive()
                except Exception:  # one bad moment must not stop the service
                    logger.exception("watch loop error; carrying on")
        finally:
            observer.stop()
            observer.join(timeout=10)

    def _watch_anew(self, old: BaseObserver) -> BaseObserver:
        old.stop()
        old.join(timeout=10)
        observer = self.observer()
        observer.start()
        return observer


class _Events(FileSystemEventHandler):
    """Turns watchdog events into watcher calls; an error is logged, never raised into watchdog."""

    def __init__(self, watcher: FolderWatcher) -> None:
        self.watcher = watcher

    def dispatch(self, event: FileSystemEvent) -> None:
        try:
            super().dispatch(event)
        except DATABASE_LOST:
            pass  # the service loop says so once and rescans when the database is back
        except Exception:
            logger.exception("could not handle %s", event)

    @staticmethod
    def _path(raw: str | bytes) -> Path:
        return Path(os.fsdecode(raw))

    def on_created(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self.watcher.noticed(self._path(event.src_path))

    def on_modified(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self.watcher.noticed(self._path(event.src_path))

    def on_closed(self, event: FileSystemEvent) -> None:
        self.watcher.noticed(self._path(event.src_path))

    def on_deleted(self, event: FileSystemEvent) -> None:
        self.watcher.deleted(self._path(event.src_path))

    def on_moved(self, event: FileSystemEvent) -> None:
        self.watcher.moved(self._path(event.src_path), self._path(event.dest_path), event.is_directory)
