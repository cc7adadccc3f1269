"""How moment vectors are stored and indexed, and what the server's pgvector can do.

The canonical layout (pgvector 0.7+): embeddings stored as ``halfvec`` (half the
table and index of ``vector``; recall against float32 exact search is measured
in bench/search_latency.py) and an HNSW cosine index on the default model's
dimension. A configured server with an older pgvector keeps ``vector`` storage
and searches without iterative scans; ``footage db status`` says what it lacks,
and ``footage db upgrade`` moves the catalog to ``halfvec`` once the extension
is updated.
"""

from __future__ import annotations

import logging
import os
import time
import weakref
from dataclasses import dataclass

import sqlalchemy as sa

from catalog.tables import DEFAULT_EMBEDDING_DIM

logger = logging.getLogger(__name__)

INDEX_NAME = f"ix_segments_embedding_hnsw_{DEFAULT_EMBEDDING_DIM}"
HALFVEC_SINCE = (0, 7, 0)
ITERATIVE_SCANS_SINCE = (0, 8, 0)
# HNSW build parameters, from bench/search_latency.py (10^5 halfvec moments, 2 cores,
# one parallel worker; the machine was not idle, so the times compare with each other
# only): m=16 with ef_construction=64 (pgvector's defaults) built in 28 s to a 130 MB
# index with recall@10 1.0 on clustered data; m=24 took 61 s and 156 MB,
# ef_construction=128 took 99 s, for the same recall (on uniform random data m=24
# lifted recall@10 at ef_search 400 from 0.44 to 0.54, not enough to matter). At 10^6
# clustered moments on an idle machine, ef_construction 64 built in 307-310 s (three
# builds; recall@10 0.965-0.973 at ef_search 200), 60 in 267-270 s (two builds; recall
# 0.951-0.957 at ef_search 200, 0.965 at 240), 56 in 282 s with the machine busier
# (0.955): 60, with search's candidate list lengthened to match, keeps a reindex of a
# million moments under five minutes on 2 cores (1.30 GB index, 1.12 GB table).
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 60
# A build is several times faster while the graph fits in maintenance_work_mem; past
# it pgvector goes on on disk (and says so in a notice, which the bench prints). Per
# row it holds the halfvec (2 bytes a dimension), up to 2*m neighbour candidates of
# 16 bytes on layer 0 (more on upper layers) and its element header: about 2 KB at
# 512 dimensions; 10^6 rows then build in memory, without the notice.
_GRAPH_BYTES_PER_ROW = DEFAULT_EMBEDDING_DIM * 2 + HNSW_M * 2 * 24 + 256
_MIN_BUILD_MEMORY = 64 << 20
_MAX_BUILD_MEMORY_SHARE = 0.25  # of the machine's memory: the server shares it with rendering


@dataclass(frozen=True)
class VectorSupport:
    """The server's pgvector and the catalog's embedding storage."""

    version: tuple[int, ...]
    storage: str | None  # type of segments.embedding ("halfvec" or "vector"); None before migration

    @property
    def has_halfvec(self) -> bool:
        return self.version >= HALFVEC_SINCE

    @property
    def has_iterative_scans(self) -> bool:
        return self.version >= ITERATIVE_SCANS_SINCE

    @property
    def version_text(self) -> str:
        return ".".join(str(part) for part in self.version)

    def lacks(self) -> list[str]:
        """What this catalog misses of the canonical layout, each with what to do."""
        missing: list[str] = []
        if not self.has_iterative_scans:
            missing.append(
                f"iterative index scans (pgvector {_text(ITERATIVE_SCANS_SINCE)}+; has {self.version_text}): "
                "filtered searches fall back to exact ranking more often"
            )
        if self.storage == "vector":
            if self.has_halfvec:
                missing.append("halfvec storage: run `footage db upgrade`")
            else:
                missing.append(
                    f"halfvec storage (pgvector {_text(HALFVEC_SINCE)}+): vectors take twice the space; update "
                    "the extension (ALTER EXTENSION vector UPDATE), then run `footage db upgrade`"
                )
        return missing


def _text(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


def parse_version(raw: str) -> tuple[int, ...]:
    return tuple(int(part) for part in raw.split(".")[:3] if part.isdigit())


def vector_support(conn: sa.Connection) -> VectorSupport:
    """Ask the server in one round trip; the catalog's tables must exist."""
    row = conn.execute(
        sa.text(
            "SELECT (SELECT extversion FROM pg_extension WHERE extname = 'vector'), "
            "(SELECT format_type(atttypid, NULL) FROM pg_attribute "
            " WHERE attrelid = to_regclass('segments') AND attname = 'embedding')"
        )
    ).one()
    return VectorSupport(version=parse_version(row[0] or "0"), storage=row[1])


# Per engine (one per opened catalog): (when asked, the answer). Storage changes only
# with a migration, which a long-running service picks up within this many seconds.
_SUPPORT_TTL_S = 60.0
_support_cache: weakref.WeakKeyDictionary[sa.Engine, tuple[float, VectorSupport]] = weakref.WeakKeyDictionary()


def cached_vector_support(conn: sa.Connection) -> VectorSupport:
    """``vector_support``, asked at most once a minute per database: a search pays one
    round trip less."""
    now = time.monotonic()
    cached = _support_cache.get(conn.engine)
    if cached is None or now - cached[0] > _SUPPORT_TTL_S or cached[1].storage is None:
        cached = (now, vector_support(conn))
        _support_cache[conn.engine] = cached
    return cached[1]


def build_settings(rows: int) -> dict[str, str]:
    """Session settings for building the HNSW index over ``rows`` vectors: memory for the
    whole graph when the machine has it, and every core but one as parallel workers."""
    import psutil

    wanted = max(_MIN_BUILD_MEMORY, rows * _GRAPH_BYTES_PER_ROW)
    memory = min(wanted, int(psutil.virtual_memory().total * _MAX_BUILD_MEMORY_SHARE))
    workers = max(0, min(7, (os.cpu_count() or 1) - 1))
    return {"maintenance_work_mem": f"{memory // (1 << 20)}MB", "max_parallel_maintenance_workers": str(workers)}


def create_index(conn: sa.Connection, storage: str) -> None:
    """(Re)build the HNSW cosine index for ``storage`` ("halfvec" or "vector")."""
    rows = conn.execute(sa.text("SELECT count(*) FROM segments")).scalar_one()
    for name, value in build_settings(rows).items():
        conn.execute(sa.text("SELECT set_config(:name, :value, true)"), {"name": name, "value": value})
    conn.execute(sa.text(f"DROP INDEX IF EXISTS {INDEX_NAME}"))
    conn.execute(
        sa.text(
            f"CREATE INDEX {INDEX_NAME} ON segments USING hnsw "
            f"((embedding::{storage}({DEFAULT_EMBEDDING_DIM})) {storage}_cosine_ops) "
            f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION}) "
            f"WHERE embedding_dim = {DEFAULT_EMBEDDING_DIM}"
        )
    )


def use_halfvec(conn: sa.Connection) -> bool:
    """Store embeddings as ``halfvec`` when the extension can and they are not yet;
    returns whether anything changed. Run inside the migration lock."""
    support = vector_support(conn)
    if support.storage != "vector" or not support.has_halfvec:
        return False
    if conn.execute(sa.text("SELECT EXISTS (SELECT 1 FROM segments)")).scalar_one():
        logger.warning("moving the catalog's vectors to halfvec storage (once; the index is rebuilt)")
    conn.execute(sa.text(f"DROP INDEX IF EXISTS {INDEX_NAME}"))
    conn.execute(sa.text("ALTER TABLE segments ALTER COLUMN embedding TYPE halfvec USING embedding::halfvec"))
    create_index(conn, "halfvec")
    return True
