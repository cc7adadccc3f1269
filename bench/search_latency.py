"""Search latency, recall and index cost on synthetic catalogs.

Builds catalogs of N moment vectors (512-d; "clustered" looks like real footage,
many near-duplicate moments around shared looks; "random" is the hard case),
builds the HNSW index the way footage does (catalog.vector_index.create_index:
halfvec, the chosen m/ef_construction, build memory and parallel workers), then
runs top-10 queries through the code the CLI uses (catalog.search.search_vector)
and reports p50/p99 latency and recall@10 against exact float32 search (numpy,
on the vectors before they were stored as halfvec), unfiltered and with filters
that 10% and 1% of the assets pass; plus table and index size.

With --words the assets get camera-style names (``A003C012_230101_R2AB.mov`` in reel and
day folders) and their word documents, and the bench also times the word side: name
queries alone (a clip's exact name, a part of one, a prefix), whether the named clip
ranks first, and a picture query with and without the word side (catalog.fusion, the
path ``footage search`` takes). --sizes 1000000 gives 10^5 named assets.

    python bench/search_latency.py [--sizes 100000 1000000] [--queries 200] [--json]
    python bench/search_latency.py --sizes 100000 --ef-search 40 100 320   # ef_search sweep
    python bench/search_latency.py --sizes 100000 --hnsw 16,64 24,64 16,128 # build sweep
    python bench/search_latency.py --sizes 1000000 --kinds clustered --words  # names at 10^5 assets
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import hardware, scratch_catalog  # noqa: E402
from catalog import Catalog, search, vector_index  # noqa: E402
from catalog.fusion import search_fused  # noqa: E402
from catalog.results import SearchFilters, SearchOptions  # noqa: E402
from catalog.search import search_vector  # noqa: E402
from catalog.words import parse_query, refresh_words, stop_words  # noqa: E402

MODEL = "bench"
SEGMENTS_PER_ASSET = 10
# Heights by asset: 1% are 4320 lines, 10% are 2160, the rest 1080 (the filters' pass rates).
FILTERS = {
    "none": SearchFilters(),
    "10%": SearchFilters(min_height=2160, max_height=2160),
    "1%": SearchFilters(min_height=4320),
}


def _heights(n_assets: int) -> np.ndarray:
    a = np.arange(n_assets)
    return np.where(a % 100 == 0, 4320, np.where(a % 10 == 5, 2160, 1080))


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


def _clip_name(a: int) -> str:
    """Asset ``a``'s camera-style name: camera letter and roll, clip, date, a card id."""
    camera, roll, clip = "ABCD"[a % 4], 1 + (a // 4) % 999, 1 + (a // 3996) % 999
    return f"{camera}{roll:03d}C{clip:03d}_{230101 + a % 28:06d}_R{a % 7}{'XY'[a % 2]}{'AB'[a % 3 % 2]}"


def _path(a: int) -> str:
    return f"/bench/reel{1 + a % 50}/day{1 + a % 12}/{_clip_name(a)}.mov"


def _load(catalog: Catalog, vectors: np.ndarray, heights: np.ndarray) -> None:
    """Bulk-load assets and moment vectors (halfvec, as footage stores them), without the index."""
    from pgvector import HalfVector
    from pgvector.psycopg import register_vector

    raw = catalog.engine.raw_connection()
    try:
        conn = raw.driver_connection
        assert conn is not None
        register_vector(conn)
        with conn.cursor() as cur:
            cur.execute("TRUNCATE segments, renditions, assets RESTART IDENTITY CASCADE")
            cur.execute(f"DROP INDEX IF EXISTS {vector_index.INDEX_NAME}")
            with cur.copy("COPY assets (path, status, width, height) FROM STDIN") as copy:
                for a, height in enumerate(heights):
                    copy.write_row((_path(a), "indexed", height * 16 // 9, int(height)))
            with cur.copy(
                "COPY segments (asset_id, start_s, end_s, frame_s, embedding, embedding_model, embedding_dim) "
                "FROM STDIN WITH (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["int8", "float8", "float8", "float8", "halfvec", "text", "int2"])
                for i, vector in enumerate(vectors):
                    t = float(i % SEGMENTS_PER_ASSET) * 2
                    copy.write_row((i // SEGMENTS_PER_ASSET + 1, t, t + 2, t + 1, HalfVector(vector), MODEL, 512))
        conn.commit()
    finally:
        raw.close()


def _build(catalog: Catalog, m: int, ef_construction: int) -> tuple[float, list[str]]:
    """Build seconds, and what the server said meanwhile (pgvector says when the graph
    outgrows maintenance_work_mem)."""
    vector_index.HNSW_M, vector_index.HNSW_EF_CONSTRUCTION = m, ef_construction
    notices: list[str] = []
    start = time.perf_counter()
    with catalog.engine.begin() as conn:
        driver = conn.connection.driver_connection
        assert driver is not None

        def heard(notice: Any) -> None:
            if not str(notice.message_primary).endswith("does not exist, skipping"):  # the DROP before it
                notices.append(str(notice.message_primary))

        driver.add_notice_handler(heard)
        try:
            vector_index.create_index(conn, "halfvec")
        finally:
            driver.remove_notice_handler(heard)  # the pooled connection outlives this build
    build = time.perf_counter() - start
    with catalog.engine.begin() as conn:
        conn.execute(sa.text("ANALYZE assets"))
        conn.execute(sa.text("ANALYZE segments"))
    return build, notices


def _sizes(catalog: Catalog) -> dict[str, float]:
    with catalog.engine.connect() as conn:
        table, index = conn.execute(
            sa.text(f"SELECT pg_table_size('segments'), pg_relation_size('{vector_index.INDEX_NAME}')")
        ).one()
    return {"table_mb": round(table / 2**20, 1), "index_mb": round(index / 2**20, 1)}


def _truth(vectors: np.ndarray, passes: np.ndarray, query: np.ndarray, k: int = 10) -> set[int]:
    """Exact float32 top-k asset ids (1-based), each asset scored by its best moment."""
    scores = (vectors @ query).reshape(-1, SEGMENTS_PER_ASSET).max(axis=1)
    scores[~passes] = -np.inf
    best = np.argsort(-scores)[:k]
    return {int(a) + 1 for a in best if np.isfinite(scores[a])}


def _queries(
    catalog: Catalog, vectors: np.ndarray, heights: np.ndarray, probes: np.ndarray, filters: SearchFilters
) -> dict[str, float]:
    passes = np.ones(len(heights), bool)
    if filters.min_height is not None:
        passes &= heights >= filters.min_height
    if filters.max_height is not None:
        passes &= heights <= filters.max_height
    latencies: list[float] = []
    recalls: list[float] = []
    full: list[bool] = []
    for q in probes:
        with catalog.session() as session:
            start = time.perf_counter()
            got = search_vector(session, q, MODEL, SearchOptions(limit=10, filters=filters))
            latencies.append((time.perf_counter() - start) * 1000)
        want = _truth(vectors, passes, q)
        recalls.append(len(want & {h.family.master.asset_id for h in got}) / max(1, len(want)))
        full.append(len(got) == min(10, int(passes.sum())))
    latencies.sort()
    return {
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 2),
        "recall_at_10": round(statistics.mean(recalls), 4),
        "full_pages": round(statistics.mean(full), 4),
    }


def _name_words(catalog: Catalog, n_assets: int) -> float:
    """Every asset's word document, through the code the indexer uses; seconds taken."""
    start = time.perf_counter()
    for first in range(1, n_assets + 1, 2000):
        with catalog.session() as session:
            refresh_words(session, range(first, min(first + 2000, n_assets + 1)), [])
    with catalog.engine.begin() as conn:
        conn.execute(sa.text("ANALYZE assets"))
        conn.execute(sa.text("ANALYZE asset_words"))
    return time.perf_counter() - start


def _timed(runs: list[Any], call: Any) -> tuple[dict[str, float], list[Any]]:
    latencies, results = [], []
    for arg in runs:
        with_session = call(arg)
        start = time.perf_counter()
        results.append(with_session())
        latencies.append((time.perf_counter() - start) * 1000)
    latencies.sort()
    return {
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 2),
    }, results


def _words_rows(catalog: Catalog, probes: np.ndarray, n_assets: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Name queries alone, and a picture query with the word side off and on."""
    rng = np.random.default_rng(7)
    picked = [int(a) for a in rng.integers(0, n_assets, args.queries)]
    options = SearchOptions(limit=10)
    rows: list[dict[str, Any]] = []

    def words(text: str) -> Any:
        def run() -> Any:
            with catalog.session() as session:
                query = parse_query(text, stop_words(session, text))
                return search_fused(session, None, MODEL, query, options)

        return run

    cases = {
        "exact clip name": lambda a: _clip_name(a).split("_")[0],
        "clip part": lambda a: _clip_name(a).split("_")[0][4:],
        "prefix": lambda a: _clip_name(a)[:3],
        "scene words": lambda a: f"reel{1 + a % 50} day{1 + a % 12}",
    }
    for case, text_of in cases.items():
        figures, results = _timed(picked, lambda a, t=text_of: words(t(a)))
        row: dict[str, Any] = {"words": case, "assets": n_assets, **figures}
        if case == "exact clip name":
            firsts = [bool(r) and r[0].family.master.asset_id == a + 1 for r, a in zip(results, picked, strict=True)]
            row["named_first"] = round(statistics.mean(firsts), 4)
        rows.append(row)

    description = "aerial view of a harbour at dusk"
    for side in ("picture", "both"):

        def fused(q: np.ndarray, side: str = side) -> Any:
            def run() -> Any:
                with catalog.session() as session:
                    if side == "picture":
                        return search_vector(session, q, MODEL, options)
                    query = parse_query(description, stop_words(session, description))
                    return search_fused(session, q, MODEL, query, options)

            return run

        figures, _ = _timed(list(probes), fused)
        rows.append({"words": f"picture query, {side}", "assets": n_assets, **figures})
    return rows


def _run(catalog: Catalog, kind: str, n: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    rng = np.random.default_rng(42)
    vectors = _vectors(kind, n, rng)
    heights = _heights(n // SEGMENTS_PER_ASSET)
    picks = vectors[rng.integers(0, n, args.queries)]
    # Queries near catalogued moments (noise of norm ~0.1), as a real query near real footage.
    probes = picks + (0.1 / np.sqrt(512)) * rng.normal(size=picks.shape).astype(np.float32)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    start = time.perf_counter()
    _load(catalog, vectors, heights)
    load = time.perf_counter() - start
    rows: list[dict[str, Any]] = []
    for m, ef_construction in args.hnsw:
        build, notices = _build(catalog, m, ef_construction)
        sizes = _sizes(catalog)
        if notices and not args.json:
            print(f"build notices: {'; '.join(notices)}", flush=True)
        for ef_search in args.ef_search or [None]:
            if ef_search is not None:  # a fixed candidate list instead of footage's rule
                search._MIN_EF_SEARCH, search._EF_PER_ROW = ef_search, 0
            for name, filters in FILTERS.items():
                row = {
                    "kind": kind,
                    "segments": n,
                    "m": m,
                    "ef_construction": ef_construction,
                    "ef_search": ef_search or "footage",
                    "filter": name,
                    "load_s": round(load, 1),
                    "build_s": round(build, 1),
                    "build_notices": notices,
                    **sizes,
                    **_queries(catalog, vectors, heights, probes, filters),
                }
                rows.append(row)
                if not args.json:
                    print("  ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    if args.words:
        n_assets = n // SEGMENTS_PER_ASSET
        took = _name_words(catalog, n_assets)
        if not args.json:
            print(f"words: {n_assets} assets' documents in {took:.1f}s", flush=True)
        for row in _words_rows(catalog, probes, n_assets, args):
            row = {"kind": kind, "segments": n, "words_build_s": round(took, 1), **row}
            rows.append(row)
            if not args.json:
                print("  ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    return rows


def _pair(text: str) -> tuple[int, int]:
    m, ef = text.split(",")
    return int(m), int(ef)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--kinds", nargs="+", default=["clustered", "random"])
    parser.add_argument("--ef-search", type=int, nargs="+", help="fixed hnsw.ef_search values to try")
    parser.add_argument(
        "--hnsw",
        type=_pair,
        nargs="+",
        default=[(vector_index.HNSW_M, vector_index.HNSW_EF_CONSTRUCTION)],
        help="m,ef_construction pairs to build with",
    )
    parser.add_argument("--words", action="store_true", help="also time name queries and the fused search")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of lines")
    args = parser.parse_args()
    with scratch_catalog() as catalog:
        with catalog.engine.connect() as conn:
            support = vector_index.vector_support(conn)
            server = conn.execute(sa.text("SHOW server_version")).scalar()
        header = {
            "hardware": hardware(),
            "postgresql": server,
            "pgvector": support.version_text,
            "storage": support.storage,
            "segments_per_asset": SEGMENTS_PER_ASSET,
            "queries": args.queries,
        }
        if not args.json:
            print("  ".join(f"{k}={v}" for k, v in header.items()), flush=True)
        rows = [row for n in args.sizes for kind in args.kinds for row in _run(catalog, kind, n, args)]
    if args.json:
        print(json.dumps({**header, "results": rows}, indent=2))


if __name__ == "__main__":
    main()
