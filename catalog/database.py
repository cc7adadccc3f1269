"""Opening the catalog: which server, which URL, one engine per process."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from catalog import schema
from catalog.embedded import DATABASE_NAME, EmbeddedServer, start_embedded
from catalog.errors import ConfigurationError, DatabaseUnavailableError, SchemaOutOfDateError
from catalog.settings import CatalogSettings
from catalog.storages import RENDITIONS, THUMBNAILS_FOLDER, Mounts, all_storages, ensure_host_storage, read_map
from catalog.tables import Storage


def normalise_url(raw: str) -> URL:
    """Parse a PostgreSQL URL and make it use psycopg 3, whatever driver it named."""
    try:
        url = make_url(raw)
    except ArgumentError as exc:
        raise ConfigurationError(f"FOOTAGE_DATABASE_URL is not a database URL: {raw!r}") from exc
    if url.get_backend_name() not in ("postgresql", "postgres"):
        raise ConfigurationError(
            f"FOOTAGE_DATABASE_URL must name a PostgreSQL server (postgresql+psycopg://...), "
            f"not {url.get_backend_name()!r}"
        )
    return url.set(drivername="postgresql+psycopg")


def _ensure_database(admin_uri: str, name: str) -> None:
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        # Another footage command starting at the same moment may make it first.
        if not exists:
            with contextlib.suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                conn.execute(f'CREATE DATABASE "{name}"')


@dataclass
class Catalog:
    """An open catalog: the engine, a session factory, where the server came from, and this
    host's map of the storages (every session carries it: ``catalog.storages.mounts_of``)."""

    engine: Engine
    embedded: EmbeddedServer | None
    home: Path | None = None  # FOOTAGE_HOME: where this machine keeps thumbnails beside the catalog
    settings: CatalogSettings | None = None

    def __post_init__(self) -> None:
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        settings = self.settings or CatalogSettings(home=self.home or Path.cwd())
        folders = read_map(self.home) if self.home is not None else {}
        self.mounts = Mounts(
            settings.host, folders, settings.storage_overrides, self._load_storages, settings.renditions_dir
        )
        self.renditions_dir = settings.renditions_dir

    def _load_storages(self) -> list[Storage]:
        with self._sessions.begin() as session:
            return all_storages(session)

    def thumbnail_dirs(self) -> list[Path]:
        """Where moments' thumbnails are, the one written to first: the renditions storage (every
        host that serves it sees them), then ``FOOTAGE_HOME/thumbnails`` (this host's own, and
        where one-machine catalogs kept them before storages)."""
        dirs = [self.home / "thumbnails"] if self.home is not None else []
        renditions = self.mounts.by_name(RENDITIONS)
        if renditions is not None and (mount := self.mounts.mount(renditions)).served and mount.folder is not None:
            dirs.insert(0, mount.folder / THUMBNAILS_FOLDER)
        return dirs

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        with self._sessions.begin() as session:
            session.info["mounts"] = self.mounts
            yield session

    @property
    def conninfo(self) -> str:
        """A libpq connection string (URI) for clients other than SQLAlchemy."""
        return self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)

    def ping(self, timeout_s: float = 5.0) -> None:
        """Raise ``psycopg.OperationalError`` within ``timeout_s`` when the server is gone.

        A connection of its own, not one from the pool: a pool that is busy or
        reconnecting would make the answer wait up to its checkout timeout (30 s).
        """
        with psycopg.connect(self.conninfo, connect_timeout=max(1, round(timeout_s))) as conn:
            conn.execute("SELECT 1")

    def revive(self) -> None:
        """After losing the database: start the embedded server again when it is ours (a
        no-op while it runs); a configured server is its administrator's to restart."""
        if self.embedded is not None:
            start_embedded(self.embedded.pgdata)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_catalog(settings: CatalogSettings, *, require_current: bool = True) -> Catalog:
    """Connect to the catalog named by ``settings``.

    With no database URL the embedded server is started (or reused) and
    migrated to the newest schema. A configured server is never migrated
    behind the user's back: when ``require_current`` is set and its schema is
    behind, ``SchemaOutOfDateError`` says to run ``footage db upgrade``.
    """
    embedded: EmbeddedServer | None = None
    if settings.database_url is None:
        embedded = start_embedded(settings.pgdata)
        try:
            _ensure_database(embedded.admin_uri, DATABASE_NAME)
        except psycopg.Error as exc:
            raise DatabaseUnavailableError(f"embedded PostgreSQL refused a connection: {exc}") from exc
        url = normalise_url(embedded.admin_uri).set(database=DATABASE_NAME)
    else:
        url = normalise_url(settings.database_url)

    engine = sa.create_engine(url, pool_pre_ping=True)
    catalog = Catalog(engine=engine, embedded=embedded, home=settings.home, settings=settings)
    try:
        current, head = schema.current_revision(engine), schema.head_revision()
        if embedded is not None and (current != head or embedded.upgraded_from is not None):
            schema.upgrade(engine, host=settings.host)
            current = head
        elif require_current and current != head:
            raise SchemaOutOfDateError(
                f"the catalog at {url.render_as_string(hide_password=True)} is at schema "
                f"{current or 'none'}, this footage needs {head}: run `footage db upgrade`"
            )
        if current == head:
            with catalog.session() as session:
                ensure_host_storage(session, settings.host)
    except OperationalError as exc:
        catalog.close()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseUnavailableError(
            f"cannot reach the catalog database at {url.render_as_string(hide_password=True)}: {reason}"
        ) from exc
    except BaseException:
        catalog.close()
        raise
    return catalog
