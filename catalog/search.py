"""Nearest moments for a query vector, grouped into asset families.

The HNSW index answers the nearest-neighbour part. With pgvector 0.8's
iterative index scans a filtered query keeps walking the graph until enough
rows pass the filters (up to ``hnsw.max_scan_tuples``), so it returns a full
page from the index. Only when the index runs dry under the filters anyway
(very selective filters, or an older pgvector without iterative scans) does
the query run again exactly, a scan of the matching rows, so filters never
lose results. The vector query has one ORDER BY key, the distance: a second
key would silently turn the index off.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import sqlalchemy as sa
from pgvector import Vector
from sqlalchemy.orm import Session

from catalog.families import families
from catalog.results import FamilyHit, MomentHit, SearchFilters, SearchOptions
from catalog.storages import Mounts, mounts_of
from catalog.tables import DEFAULT_EMBEDDING_DIM, MomentView, RenditionStatus
from catalog.timecode import timecode
from catalog.vector_index import cached_vector_support

logger = logging.getLogger(__name__)

# HNSW candidate lists longer than this are not allowed by pgvector.
_MAX_EF_SEARCH = 1000
# The candidate list is 3 times the rows asked (240 for a top-10 search: 80 rows),
# at least 40. bench/search_latency.py, halfvec moments, 2 cores, nothing else running,
# the embedded server's buffers (catalog/embedded.server_settings), 10^6 clustered
# moments (moments around shared looks, like real footage), index built with
# ef_construction 60: ef_search 200 / 240 / 280 gave recall@10 against exact float32
# search 0.951 / 0.965 / 0.966 at p50 8.7 / 9.3 / 9.8 ms (p99 14 / 12 / 13 ms): 240 is
# the shortest list well past 0.95. (With ef_construction 64, 200 gave 0.965-0.973 at
# 9.5-9.9 ms, and the build took 40 s longer.) At 10^5 recall is 1.0 from 40 up. On
# uniform random 512-d vectors, where neighbours 2 to 10 are near-ties, recall@10
# stays low for any list (0.32 at 10^5, 0.09 at 10^6): no setting rescues that case,
# and it is not what footage stores. Iterative scans (pgvector 0.8) walk on when
# filters remove rows; without them the list must be at least the rows asked,
# which this rule keeps.
_MIN_EF_SEARCH = 40
_EF_PER_ROW = 3.0
# Filters that fewer moment views than this pass are ranked exactly, as vector
# databases do below their "full scan threshold": at 10^6 moments a 1% filter
# (10^4 views) walked by the graph gave recall@10 0.65; ranked exactly, 0.999
# in 37 ms p50 (bench/search_latency.py).
_EXACT_BELOW = 20_000
# Rows asked of the first round: enough for every moment wanted to arrive as
# up to three views (2.39:1 frames) with neighbouring moments of the same
# family crowding in, so most searches need one round; never fewer than the
# shortest list the index searches anyway.
_ROWS_PER_MOMENT = 8
_MIN_ROWS = 50
# A filtered search walked by the graph asks twice the rows (and so twice the candidate
# list): iterative scans in relaxed order hand rows over a little out of order, so a
# page cut at n rows misses some better ones that come after. At 10^6 clustered moments
# with a filter 10% pass (bench/search_latency.py, one build): recall@10 0.948 asking n,
# 0.9575 asking 2n (p50 36 -> 54 ms), no better at 3n or 5n (0.943-0.944 on another
# build whose 1x gave 0.923); a longer list alone (ef_search 400), strict order (0.93)
# or more scan memory (hnsw.scan_mem_multiplier 4 and 16: 0.948) did not help.
_FILTERED_ROWS_FACTOR = 2
# A round that returned rows from too few families asks for this many times
# more, up to a bound on the work one query may do: 50 rows grow to at most
# 51,200 in five rounds, then the families found are what the search returns.
_GROWTH = 4
_MAX_ROWS = 20_000
# Views of one frame share its time exactly, and a rendition keeps its
# master's timestamps up to time-base rounding (far below this): hits within
# one such bucket of a family are one moment. Two different moments of a file
# stand for shots that begin at least a cut apart, practically always more.
_SAME_MOMENT_S = 0.1


@dataclass(frozen=True)
class _Row:
    asset_id: int
    family_id: int
    path: str
    start_s: float
    end_s: float
    frame_s: float
    distance: float
    rate: Fraction | None
    start_timecode: str | None


def filters_sql(filters: SearchFilters, params: dict[str, Any], mounts: Mounts) -> str:
    """AND clauses on asset ``a`` (``link``: its row in renditions, when it is one); a path
    prefix is this host's, placed in the storage that holds it."""
    clauses: list[str] = []
    if filters.kind != "any":
        clauses.append("a.kind = :kind")
        params["kind"] = filters.kind
    if filters.min_height is not None:
        clauses.append("a.height >= :min_height")
        params["min_height"] = filters.min_height
    if filters.max_height is not None:
        clauses.append("a.height <= :max_height")
        params["max_height"] = filters.max_height
    if filters.path_prefix:
        storage, rel = mounts.place(filters.path_prefix)
        escaped = rel.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        clauses.append("a.storage_id = :prefix_storage AND a.rel_path LIKE :prefix ESCAPE '\\'")
        params["prefix_storage"] = storage.id
        params["prefix"] = escaped + "%"
    if filters.indexed_since is not None:
        clauses.append("a.indexed_at >= :since")
        params["since"] = filters.indexed_since
    if filters.has_rendition is not None:
        exists = (
            "EXISTS (SELECT 1 FROM renditions r2 WHERE r2.master_id = "
            "COALESCE(link.master_id, a.id) AND r2.status = :done)"
        )
        clauses.append(exists if filters.has_rendition else f"NOT {exists}")
        params["done"] = RenditionStatus.DONE.value
    if filters.selection is not None:
        clauses.append(
            "COALESCE(link.master_id, a.id) IN (SELECT COALESCE(l2.master_id, si.asset_id) FROM selection_items si "
            "JOIN selections sel ON sel.id = si.selection_id "
            "LEFT JOIN renditions l2 ON l2.rendition_asset_id = si.asset_id WHERE sel.name = :selection)"
        )
        params["selection"] = filters.selection
    return "".join(f" AND {c}" for c in clauses)


@dataclass(frozen=True)
class _Plan:
    """How one round asks the server: through the index or exactly, on which storage type."""

    storage: str
    exact: bool
    iterative_scans: bool


def _matching(filters: SearchFilters, params: dict[str, Any], mounts: Mounts) -> str:
    """FROM and WHERE of the moment views a search may return (``params`` has model and dim)."""
    return f"""
        FROM segments s
        JOIN assets a ON a.id = s.asset_id
        LEFT JOIN renditions link ON link.rendition_asset_id = a.id
        WHERE s.embedding_model = :model AND s.embedding_dim = :dim
        {filters_sql(filters, params, mounts)}
    """


def _few_pass(session: Session, model: str, dim: int, filters: SearchFilters) -> bool:
    """Whether fewer than ``_EXACT_BELOW`` moment views pass ``filters``, as the planner
    estimates it. Counting them took longer than the search (15 ms of 36 at 10^6 moments
    with a filter 10% pass); a wrong guess costs time, never results: an index walk that
    runs dry is ranked exactly after all, and exact ranking misses nothing."""
    if filters == SearchFilters():
        return False
    params: dict[str, Any] = {"model": model, "dim": dim}
    plan = session.execute(
        sa.text(f"EXPLAIN (FORMAT JSON) SELECT 1 {_matching(filters, params, mounts_of(session))}"), params
    ).scalar_one()
    return float(plan[0]["Plan"]["Plan Rows"]) < _EXACT_BELOW


def _nearest(
    session: Session, vector: np.ndarray, model: str, n: int, filters: SearchFilters, plan: _Plan
) -> list[_Row]:
    dim = int(vector.shape[0])
    # The vector in pgvector's text form: psycopg would send a list as a float8[] array,
    # which takes it about 0.5 ms to write out for 512 values.
    params: dict[str, Any] = {"q": Vector(vector).to_text(), "model": model, "dim": dim, "n": n}
    # The cast expression is what the HNSW index is built on; the bare column
    # makes PostgreSQL rank every matching row exactly.
    indexed = dim == DEFAULT_EMBEDDING_DIM and not plan.exact
    kind = plan.storage
    distance = (
        f"(s.embedding::{kind}({dim})) <=> CAST(:q AS {kind}({dim}))"
        if indexed
        else f"s.embedding <=> CAST(:q AS {kind})"
    )
    sql = f"""
        SELECT s.asset_id, COALESCE(link.master_id, a.id) AS family_id, a.storage_id, a.rel_path,
               s.start_s, s.end_s, s.frame_s, {distance} AS distance,
               a.frame_rate_num, a.frame_rate_den, a.timecode
        {_matching(filters, params, mounts_of(session))}
        ORDER BY {distance}
        LIMIT :n
    """
    if indexed:
        ef_search = min(_MAX_EF_SEARCH, max(_MIN_EF_SEARCH, round(_EF_PER_ROW * n)))
        # One round trip for both settings: at 10^6 moments the query itself takes a few ms.
        session.execute(
            sa.text("SELECT set_config('hnsw.ef_search', :ef, true), set_config('hnsw.iterative_scan', :scan, true)"),
            {"ef": str(ef_search), "scan": "relaxed_order" if plan.iterative_scans else "off"},
        )
    logger.debug("search round: %s, %d rows", "index" if indexed else "exact", n)
    rows = session.execute(sa.text(sql), params).all()
    mounts = mounts_of(session)
    return [_row(r, mounts) for r in rows]


def _row(r: Any, mounts: Mounts) -> _Row:
    """A result row of the moment queries (asset_id, family_id, storage and path, times, distance,
    rate, timecode), with the path as this host shows it."""
    rate = Fraction(r.frame_rate_num, r.frame_rate_den) if r.frame_rate_num and r.frame_rate_den else None
    path = mounts.shown(r.storage_id, r.rel_path)
    return _Row(r.asset_id, r.family_id, path, r.start_s, r.end_s, r.frame_s, float(r.distance), rate, r.timecode)


def _group(rows: list[_Row], moments_per_family: int) -> dict[int, list[MomentHit]]:
    """Best moments per family, best first. Views of one frame, and the same
    moment seen in the master and in a rendition, count once."""
    grouped: dict[int, list[MomentHit]] = {}
    seen: set[tuple[int, int]] = set()
    for row in rows:  # already ordered by distance
        key = (row.family_id, round(row.frame_s / _SAME_MOMENT_S))
        if key in seen:
            continue
        seen.add(key)
        hits = grouped.setdefault(row.family_id, [])
        if len(hits) < moments_per_family:
            hits.append(_moment_hit(row))
    return grouped


def _moment_hit(row: _Row) -> MomentHit:
    return MomentHit(
        row.asset_id,
        row.path,
        row.start_s,
        row.end_s,
        row.frame_s,
        1.0 - row.distance,
        timecode(row.frame_s, row.rate, row.start_timecode),
        timecode(row.start_s, row.rate, row.start_timecode),
        timecode(row.end_s, row.rate, row.start_timecode),
        str(row.rate) if row.rate else None,
    )


def moments_of(
    session: Session, wanted: list[tuple[int, float | None]], model: str, vector: np.ndarray | None
) -> dict[tuple[int, float | None], MomentHit]:
    """For each (asset id, time) wanted, the asset's moment that holds that time, or (time None)
    its first moment; scored against ``vector`` when there is one (else 0). One query for all:
    the moments the words found, or a selection's entries."""
    if not wanted:
        return {}
    params: dict[str, Any] = {
        "model": model,
        "assets": [a for a, _ in wanted],
        "times": [t for _, t in wanted],
    }
    distance = "s.embedding <=> CAST(:q AS halfvec)" if vector is not None else "1.0"
    if vector is not None:
        params["q"] = Vector(vector).to_text()
    columns = f"""s.asset_id, s.asset_id AS family_id, a.storage_id, a.rel_path, s.start_s, s.end_s, s.frame_s,
                  {distance} AS distance, a.frame_rate_num, a.frame_rate_den, a.timecode"""
    rows = session.execute(
        sa.text(
            f"""
            WITH want AS (
                SELECT * FROM unnest(CAST(:assets AS bigint[]), CAST(:times AS float8[])) AS t(asset_id, at_s))
            SELECT * FROM (
                SELECT DISTINCT ON (want.asset_id, want.at_s) want.at_s AS wanted_s, {columns}
                FROM want JOIN segments s ON s.asset_id = want.asset_id AND s.embedding_model = :model
                JOIN assets a ON a.id = s.asset_id
                WHERE want.at_s IS NULL OR (s.start_s <= want.at_s AND (s.end_s > want.at_s OR s.start_s = s.end_s))
                ORDER BY want.asset_id, want.at_s, s.frame_s, distance
            ) found
            """
        ),
        params,
    ).all()
    mounts = mounts_of(session)
    return {(r.asset_id, r.wanted_s): _moment_hit(_row(r, mounts)) for r in rows}


def whole_asset(session: Session, asset_id: int) -> MomentHit | None:
    """An asset from its first frame to its last, as one moment (a selection's whole-asset entry)."""
    row = session.execute(
        sa.text(
            """
            SELECT a.id AS asset_id, a.id AS family_id, a.storage_id, a.rel_path, 0::float8 AS start_s,
                   COALESCE(a.duration_s, 0)::float8 AS end_s, 0::float8 AS frame_s, 1::float8 AS distance,
                   a.frame_rate_num, a.frame_rate_den, a.timecode
            FROM assets a WHERE a.id = :id
            """
        ),
        {"id": asset_id},
    ).one_or_none()
    return _moment_hit(_row(row, mounts_of(session))) if row is not None else None


def search_vector(
    session: Session, vector: np.ndarray, model: str, options: SearchOptions | None = None
) -> list[FamilyHit]:
    """The best ``options.limit`` families for ``vector`` among moments embedded by ``model``.

    ``vector`` must be L2-normalised; scores are cosine similarities (1 is identical).
    """
    options = options or SearchOptions()
    n = max(_MIN_ROWS, options.limit * options.moments * _ROWS_PER_MOMENT)
    support = cached_vector_support(session.connection())
    # A filter few rows pass is answered exactly: ranking them all is cheap and misses
    # nothing, where a graph walk would wander far to find a page of them.
    exact = options.exact or _few_pass(session, model, int(vector.shape[0]), options.filters)
    plan = _Plan(storage=support.storage or "vector", exact=exact, iterative_scans=support.has_iterative_scans)
    if options.filters != SearchFilters() and not exact:
        n *= _FILTERED_ROWS_FACTOR
    while True:
        rows = _nearest(session, vector, model, n, options.filters, plan)
        grouped = _group(rows, options.moments)
        if len(grouped) >= options.limit:
            break
        if len(rows) < n:
            if plan.exact:
                break  # every matching moment view has been ranked
            # The index ran dry under the filters: rank the matching rows exactly.
            plan = dataclasses.replace(plan, exact=True)
            continue
        if n >= _MAX_ROWS:
            break
        n *= _GROWTH  # many hits from few families: look further for more families
    ranked = sorted(grouped.items(), key=lambda item: -item[1][0].score)[: options.limit]
    found = families(session, [family_id for family_id, _ in ranked])
    return [
        FamilyHit(
            rank=i + 1, score=hits[0].score, family=found[family_id], moments=tuple(hits), picture_score=hits[0].score
        )
        for i, (family_id, hits) in enumerate(ranked)
        if family_id in found
    ]


def why_nothing(session: Session, model: str) -> str | None:
    """When a search finds nothing because of the catalog, not the query: what to do about it."""
    assets_by_model = dict(
        session.execute(
            sa.select(MomentView.embedding_model, sa.func.count(sa.distinct(MomentView.asset_id))).group_by(
                MomentView.embedding_model
            )
        ).all()
    )
    if not assets_by_model:
        return "the catalog holds no indexed footage yet: run `footage index FOLDER` or `footage watch FOLDER`"
    if model in assets_by_model:
        return None
    others = ", ".join(
        f"{name} ({count} asset{'' if count == 1 else 's'})" for name, count in sorted(assets_by_model.items())
    )
    return (
        f"nothing in the catalog was embedded with {model}; it holds vectors of {others}: "
        "set FOOTAGE_CLIP_MODEL (and FOOTAGE_CLIP_PRETRAINED) to that model, or run `footage reindex`"
    )


def moment_views(session: Session, asset_id: int, model: str, at_s: float) -> list[np.ndarray]:
    """The stored vectors of an asset's moment at ``at_s`` seconds, one per view, for "more like this"."""
    of_asset = (MomentView.asset_id == asset_id, MomentView.embedding_model == model)
    containing = sa.case((sa.and_(MomentView.start_s <= at_s, MomentView.end_s > at_s), 0), else_=1)
    frame_s = session.scalar(
        sa.select(MomentView.frame_s)
        .where(*of_asset)
        .order_by(containing, sa.func.abs(MomentView.frame_s - at_s))
        .limit(1)
    )
    if frame_s is None:
        return []
    views = session.scalars(
        sa.select(MomentView.embedding).where(*of_asset, MomentView.frame_s == frame_s).order_by(MomentView.view)
    ).all()
    return [np.asarray(v, dtype=np.float32) for v in views]


def search_vectors(
    session: Session, vectors: list[np.ndarray], model: str, options: SearchOptions | None = None
) -> list[FamilyHit]:
    """Moments near any of ``vectors`` (the views of one moment): each moment scored by its
    best match, so a moment found by its own stored view scores 1. Averaging the views
    instead would describe a picture no view shows, and score the moment itself below 1."""
    options = options or SearchOptions()
    best: dict[int, FamilyHit] = {}
    moments: dict[int, dict[tuple[int, float], MomentHit]] = {}
    for vector in vectors:
        for hit in search_vector(session, vector, model, options):
            family_id = hit.family.master.asset_id or 0  # a master always has its file's asset
            if family_id not in best or hit.score > best[family_id].score:
                best[family_id] = hit
            found = moments.setdefault(family_id, {})
            for moment in hit.moments:
                key = (moment.asset_id, moment.frame_s)
                if key not in found or moment.score > found[key].score:
                    found[key] = moment
    ranked = sorted(best.items(), key=lambda item: -item[1].score)[: options.limit]
    return [
        dataclasses.replace(
            hit,
            rank=rank,
            moments=tuple(sorted(moments[family_id].values(), key=lambda m: -m.score)[: options.moments]),
        )
        for rank, (family_id, hit) in enumerate(ranked, start=1)
    ]
