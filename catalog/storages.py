"""Storages: named roots every host mounts at its own path.

The catalog keeps each file as (storage, path inside it); a host's map says
where it mounts each storage (``FOOTAGE_HOME/storages.json``, overridden per
process by ``FOOTAGE_STORAGE_<NAME>``). Every host also has a storage of its
own, ``host-<name>``, rooted at ``/``: one-machine use needs no set-up, and a
path no named storage holds still has a place, one no other host opens.

A mount is checked, not trusted: a storage's root holds ``.footage-storage``
with the storage's name and a random id written when it was added, and a host
whose folder lacks it (an unmounted share shows the empty mount point) or holds
another storage's does not serve that storage.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from catalog.errors import ConfigurationError, FootageError, NotFoundError
from catalog.tables import Asset, Storage

MARKER = ".footage-storage"
MAP_FILE = "storages.json"
RENDITIONS = "renditions"  # where renditions are written unless told otherwise
THUMBNAILS_FOLDER = ".footage-thumbnails"  # in the renditions storage: every host's page shows them
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
ENV_PREFIX = "FOOTAGE_STORAGE_"


class StorageUnavailableError(FootageError):
    """A file lies on a storage this host does not serve (not mounted here, or the wrong folder)."""

    exit_code = 7


def host_storage_name(host: str) -> str:
    """The name of ``host``'s own storage (its whole filesystem)."""
    cleaned = re.sub(r"[^a-z0-9.-]+", "-", host.lower()).strip("-.") or "unnamed"
    return f"host-{cleaned}"[:63]


def env_key(name: str) -> str:
    """The ``FOOTAGE_STORAGE_<NAME>`` variable that maps storage ``name`` (``-`` and ``.`` as ``_``)."""
    return ENV_PREFIX + re.sub(r"[^A-Z0-9]", "_", name.upper())


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise ConfigurationError(
            f"storage name {name!r}: use lower-case letters, digits, '.', '_' and '-' (starting with a letter or digit)"
        )
    if name.startswith("host-"):
        raise ConfigurationError(f"storage name {name!r}: names starting with 'host-' are each host's own disk")
    return name


# -- this host's map ---------------------------------------------------------------


def read_map(home: Path) -> dict[str, Path]:
    """The storages this host has mounted (``footage storage add/mount``), by name."""
    try:
        raw = json.loads((home / MAP_FILE).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{home / MAP_FILE} cannot be read ({exc}); fix or remove it") from exc
    return {str(name): Path(folder) for name, folder in dict(raw).items()}


def write_map(home: Path, name: str, folder: Path) -> None:
    """Record that this host mounts storage ``name`` at ``folder`` (replacing the file atomically)."""
    mapping = {k: str(v) for k, v in read_map(home).items()}
    mapping[name] = str(folder)
    home.mkdir(parents=True, exist_ok=True)
    staging = home / f".{MAP_FILE}.{os.getpid()}"
    staging.write_text(json.dumps(mapping, indent=2, sort_keys=True) + "\n")
    staging.replace(home / MAP_FILE)


# -- markers -------------------------------------------------------------------------


def read_marker(folder: Path) -> dict[str, str] | None:
    """The storage identity at ``folder``'s root; None when there is none (or it is unreadable)."""
    try:
        found = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else None


def write_marker(folder: Path, storage: Storage) -> None:
    (folder / MARKER).write_text(json.dumps({"storage": storage.name, "id": storage.marker}) + "\n")


# -- the map, checked ---------------------------------------------------------------


@dataclass(frozen=True)
class Mount:
    """One storage as this host sees it: ``folder`` when mapped, ``problem`` when not served."""

    storage: Storage
    folder: Path | None
    problem: str | None

    @property
    def served(self) -> bool:
        return self.problem is None


class Mounts:
    """This host's view of the catalog's storages: where each is, whether it is served,
    and the translation between (storage, path inside it) and this host's paths.

    The catalog's storages are read on first use and again when one unknown here is met
    (another host added it)."""

    def __init__(
        self,
        host: str,
        folders: Mapping[str, Path],
        overrides: Mapping[str, Path],
        loader: Callable[[], list[Storage]],
        renditions_dir: Path | None = None,
    ) -> None:
        self.host = host
        self.host_storage = host_storage_name(host)
        # FOOTAGE_RENDITIONS_DIR stands for the renditions storage where the map does not say
        # (its marker decides): processes of one machine with their own FOOTAGE_HOMEs share it.
        self._folders = {RENDITIONS: renditions_dir, **folders} if renditions_dir is not None else dict(folders)
        self._overrides = dict(overrides)  # by env_key
        self._loader = loader
        self._storages: dict[int, Storage] | None = None

    def reload(self) -> None:
        self._storages = {s.id: s for s in self._loader()}

    def _known(self) -> dict[int, Storage]:
        if self._storages is None:
            self.reload()
        assert self._storages is not None
        return self._storages

    def knows(self, storage_id: object) -> bool:
        """Whether ``storage_id`` (read from somewhere untyped, say a job's arguments) is a storage's id."""
        if not isinstance(storage_id, int):
            return False
        if storage_id not in self._known():
            self.reload()
        return storage_id in self._known()

    def storage(self, storage_id: int) -> Storage:
        if storage_id not in self._known():
            self.reload()
        try:
            return self._known()[storage_id]
        except KeyError:
            raise NotFoundError(f"no storage with id {storage_id} in the catalog") from None

    def by_name(self, name: str, reload: bool = True) -> Storage | None:
        found = next((s for s in self._known().values() if s.name == name), None)
        if found is None and reload:
            self.reload()
            return self.by_name(name, reload=False)
        return found

    def remember(self, storage: Storage) -> None:
        """A storage added in a transaction not yet committed (others see it once it is)."""
        self._known()[storage.id] = storage

    def map_here(self, name: str, folder: Path) -> None:
        """This process now has storage ``name`` at ``folder`` (after ``storage add/mount``)."""
        self._folders[name] = folder

    def folder(self, storage: Storage) -> Path | None:
        """Where this host has ``storage``; None when it has not mapped it."""
        if storage.host is not None:
            return Path("/") if storage.name == self.host_storage else None
        found = self._overrides.get(env_key(storage.name)) or self._folders.get(storage.name)
        return Path(os.path.abspath(found)) if found is not None else None

    def mount(self, storage: Storage) -> Mount:
        """``storage`` as this host has it now, its marker looked at anew."""
        folder = self.folder(storage)
        if storage.host is not None:
            problem = None if folder is not None else f"storage {storage.name} is the disk of host {storage.host}"
            return Mount(storage, folder, problem)
        if folder is None:
            hint = f"`footage storage mount {storage.name} PATH` or {env_key(storage.name)}=PATH"
            return Mount(storage, None, f"storage {storage.name} is not mounted on this host ({hint})")
        return Mount(storage, folder, marker_problem(storage, folder))

    def mounts(self) -> list[Mount]:
        return [self.mount(s) for s in sorted(self._known().values(), key=lambda s: (s.host is not None, s.name))]

    def path(self, storage_id: int, rel_path: str) -> Path:
        """This host's path of a file in a storage; ``StorageUnavailableError`` when it does not serve it."""
        mount = self.mount(self.storage(storage_id))
        if mount.problem is not None or mount.folder is None:
            raise StorageUnavailableError(mount.problem or f"storage {mount.storage.name} is not served here")
        return mount.folder / rel_path if rel_path else mount.folder

    def file(self, asset: Asset) -> Path:
        """This host's path of ``asset``'s file (``StorageUnavailableError`` when not served)."""
        return self.path(asset.storage_id, asset.rel_path)

    def shown_file(self, asset: Asset) -> str:
        return self.shown(asset.storage_id, asset.rel_path)

    def shown(self, storage_id: int, rel_path: str) -> str:
        """What to print for a file: this host's path where it maps the storage, else ``storage:path``."""
        storage = self.storage(storage_id)
        folder = self.folder(storage)
        if folder is not None:
            return str(folder / rel_path if rel_path else folder)
        return f"{storage.name}:{rel_path}"

    def place(self, path: Path | str) -> tuple[Storage, str]:
        """The storage that holds this host's ``path`` (the deepest mapped one), and the path inside it.

        A ``storage:path`` name as ``shown`` prints it is taken back as such."""
        text = str(path)
        named, sep, inside = text.partition(":")
        if sep and not text.startswith("/") and (storage := self.by_name(named)) is not None:
            return storage, inside.strip("/")
        absolute = Path(os.path.abspath(path))
        best: tuple[Storage, Path] | None = None
        for storage in self._known().values():
            folder = self.folder(storage)
            if folder is None or not absolute.is_relative_to(folder):
                continue
            if best is None or len(folder.parts) > len(best[1].parts):
                best = (storage, folder)
        if best is None:
            raise NotFoundError(f"no storage holds {absolute} on this host")  # only before the host storage exists
        rel = absolute.relative_to(best[1]).as_posix()
        return best[0], "" if rel == "." else rel


def mounts_of(session: Session) -> Mounts:
    """The map of the host whose session this is (``Catalog.session`` puts it there)."""
    mounts: Mounts = session.info["mounts"]
    return mounts


def marker_problem(storage: Storage, folder: Path) -> str | None:
    """Why ``folder`` is not ``storage`` (in one line), or None when its marker says it is."""
    found = read_marker(folder)
    if found is None:
        if not folder.is_dir():
            return f"storage {storage.name}: {folder} is not there (unmounted?)"
        return f"storage {storage.name}: {folder} has no {MARKER} (not mounted, or another folder)"
    if found.get("id") != storage.marker:
        other = found.get("storage", "?")
        return f"storage {storage.name}: {folder} holds storage {other!r}, not this one; it is not served here"
    return None


# -- the catalog's storages -----------------------------------------------------------


def all_storages(session: Session) -> list[Storage]:
    return list(session.scalars(sa.select(Storage).order_by(Storage.id)))


def ensure_host_storage(session: Session, host: str) -> None:
    """Record ``host``'s own storage (its whole disk) if it is not yet."""
    statement = insert(Storage).values(name=host_storage_name(host), marker=uuid.uuid4().hex, host=host)
    session.execute(statement.on_conflict_do_nothing(index_elements=[Storage.name]))


def add_storage(session: Session, name: str, folder: Path, adopt: bool = False) -> Storage:
    """Record a new storage rooted at ``folder`` and write its marker there. ``adopt``: a
    marker of the same name left there (by a catalog since made anew) is replaced."""
    check_name(name)
    if session.scalar(sa.select(Storage).where(Storage.name == name)) is not None:
        raise ConfigurationError(
            f"storage {name} exists already; map it on this host with `footage storage mount {name} {folder}`"
        )
    if not folder.is_dir():
        raise NotFoundError(f"no such folder: {folder}")
    found = read_marker(folder)
    if found is not None and not (adopt and found.get("storage") == name):
        raise ConfigurationError(f"{folder} is storage {found.get('storage')!r} already ({folder / MARKER})")
    storage = Storage(name=name, marker=uuid.uuid4().hex)
    session.add(storage)
    session.flush()
    try:
        write_marker(folder, storage)
    except OSError as exc:
        raise ConfigurationError(f"cannot write {folder / MARKER}: {exc.strerror}") from exc
    return storage
