"""Search latency and recall on synthetic catalogs.

Builds catalogs of N segments (random unit vectors, and a clustered set that
looks more like real footage: many near-duplicate moments), times the HNSW
index build, then runs top-10 queries through the same code the CLI uses
(catalog.search.search_vector) and reports p50/p99 latency and recall@10
against exact search.

    python bench/search_latency.py [--sizes 100000 1000000] [--queries 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import hardware, scratch_catalog  # noqa: E402
from catalog import Catalog  # noqa: E402
from catalog.search import SearchOptions, search_vector  # noqa: E402

MODEL = "bench"
SEGMENTS_PER_ASSET = 10


def _vectors(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "random":
        v = rng.normal(size=(n, 512)).astype(np.float32)
    else:
        centres = rng.normal(size=(max(10, n // 100), 512)).astype(np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        # Moments spread around shared looks (cosine ~0.8 to their centre).
        v = centres[rng.integers(0, len(centres), n)] + (0.75 / np.sqrt(512)) * rng.normal(size=(n, 512)).astype(
            np.float32
        )
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _load(catalog: Catalog, vectors: np.ndarray) -> float:
    """Bulk-load assets and segments, then build the HNSW index; returns build seconds."""
    n_assets = len(vectors) // SEGMENTS_PER_ASSET
    raw = catalog.engine.raw_connection()
    try:
        conn = raw.driver_connection
        assert conn is not None
        from pgvector.psycopg import register_vector

        register_vector(conn)
        with conn.cursor() as cur:
            cur.execute("TRUNCATE segments, renditions, assets RESTART IDENTITY CASCADE")
            cur.execute("DROP INDEX IF EXISTS ix_segments_embedding_hnsw_512")
            with cur.copy("COPY assets (path, status, width, height) FROM STDIN") as copy:
                for a in range(n_assets):
                    copy.write_row((f"/bench/{a}.mov", "indexed", 1920, 1080))
            with cur.copy(
                "COPY segments (asset_id, start_s, end_s, frame_s, embedding, embedding_model, embedding_dim) "
                "FROM STDIN WITH (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["int8", "float8", "float8", "float8", "vector", "text", "int2"])
                for i, vector in enumerate(vectors):
                    t = float(i % SEGMENTS_PER_ASSET) * 2
                    copy.write_row((i // SEGMENTS_PER_ASSET + 1, t, t + 2, t + 1, vector, MODEL, 512))
        conn.commit()
        with conn.cursor() as cur:
            cur.execute("SET maintenance_work_mem = '4GB'")
            cur.execute("SET max_parallel_maintenance_workers = 2")
            start = time.perf_counter()
            cur.execute(
                "CREATE INDEX ix_segments_embedding_hnsw_512 ON segments USING hnsw "
                "((embedding::vector(512)) vector_cosine_ops) WHERE embedding_dim = 512"
            )
            build = time.perf_counter() - start
            cur.execute("ANALYZE assets; ANALYZE segments")
        conn.commit()
        return build
    finally:
        raw.close()


def _run(catalog: Catalog, kind: str, n: int, queries: int) -> None:
    rng = np.random.default_rng(42)
    vectors = _vectors(kind, n, rng)
    build = _load(catalog, vectors)
    print(f"{kind} n={n}: HNSW build {build:.1f} s")
    picks = vectors[rng.integers(0, n, queries)]
    # Queries near catalogued moments (noise of norm ~0.1), as a real query near real footage.
    probes = picks + (0.1 / np.sqrt(512)) * rng.normal(size=picks.shape).astype(np.float32)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    latencies: list[float] = []
    recalls: list[float] = []
    top1: list[bool] = []
    for q in probes:
        with catalog.session() as session:
            start = time.perf_counter()
            got = search_vector(session, q, MODEL, SearchOptions(limit=10))
            latencies.append((time.perf_counter() - start) * 1000)
        with catalog.session() as session:
            truth = search_vector(session, q, MODEL, SearchOptions(limit=10, exact=True))
        want = {h.family.master.asset_id for h in truth}
        top1.append(bool(got) and bool(truth) and got[0].family.master.asset_id == truth[0].family.master.asset_id)
        recalls.append(len(want & {h.family.master.asset_id for h in got}) / max(1, len(want)))
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(
        f"{kind} n={n}: top-10 latency p50 {statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms; "
        f"recall@10 vs exact {statistics.mean(recalls):.3f}, top-1 agreement {statistics.mean(top1):.3f} "
        f"({queries} queries)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--kinds", nargs="+", default=["random", "clustered"])
    args = parser.parse_args()
    print(f"hardware: {hardware()}")
    with scratch_catalog() as catalog:
        with catalog.engine.connect() as conn:
            version = conn.execute(sa.text("SELECT extversion FROM pg_extension WHERE extname='vector'")).scalar()
            server = conn.execute(sa.text("SHOW server_version")).scalar()
        print(f"PostgreSQL {server}, pgvector {version}; {SEGMENTS_PER_ASSET} segments per asset")
        for n in args.sizes:
            for kind in args.kinds:
                _run(catalog, kind, n, args.queries)


if __name__ == "__main__":
    main()
