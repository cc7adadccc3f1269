"""One text query, both kinds of evidence: the picture side (CLIP, catalog/search.py) and
the word side (names, metadata, notes, tags: catalog/words.py), fused by reciprocal rank.

Reciprocal rank fusion needs no calibration between a cosine similarity and a text rank,
which live on unrelated scales; a file that a query word names exactly comes first
whatever the picture says (an editor who types ``A003C012`` wants that clip). When the
words match nothing the picture's order stands unchanged.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from catalog.families import families
from catalog.results import FamilyHit, MomentHit, SearchOptions
from catalog.search import filters_sql, moments_of, search_vector
from catalog.storages import mounts_of
from catalog.words import WordHit, WordsQuery, search_words

# The usual constant of reciprocal rank fusion (Cormack et al., 2009): a rank's weight
# 1 / (K + rank) flattens the head so one list cannot drown the other.
RRF_K = 60
# The word side is asked for more families than shown: a family it ranks below the page
# may still rise with its picture rank.
_WORDS_PER_RESULT = 3


def search_fused(
    session: Session, vector: np.ndarray | None, model: str, query: WordsQuery | None, options: SearchOptions
) -> list[FamilyHit]:
    """The best ``options.limit`` families by the picture (``vector``), the words (``query``)
    or both; either may be None (that side is off)."""
    picture = search_vector(session, vector, model, options) if vector is not None else []
    words: list[WordHit] = []
    if query is not None and query.terms:
        params: dict[str, Any] = {}
        restrict = filters_sql(options.filters, params, mounts_of(session))
        words = search_words(session, query, options.limit * _WORDS_PER_RESULT, restrict, params)
    if not words:
        return picture
    by_family: dict[int, list[WordHit]] = {}
    for hit in words:
        by_family.setdefault(hit.family_id, []).append(hit)
    word_rank = {family_id: rank for rank, family_id in enumerate(by_family, start=1)}
    picture_by_family = {hit.family.master.asset_id or 0: hit for hit in picture}
    picture_rank = {family_id: hit.rank for family_id, hit in picture_by_family.items()}
    fused = {
        family_id: sum(1.0 / (RRF_K + ranks[family_id]) for ranks in (picture_rank, word_rank) if family_id in ranks)
        for family_id in picture_rank.keys() | word_rank.keys()
    }
    named = {family_id for family_id, hits in by_family.items() if any(h.named for h in hits)}
    order = sorted(fused, key=lambda f: (f not in named, -fused[f], f))[: options.limit]
    found = families(session, [f for f in order if f not in picture_by_family])
    # The moments whose notes or tags matched, and each words-only family's first moment
    # (when none of its own matched), in one query.
    wanted: list[tuple[int, float | None]] = []
    for family_id in order:
        hits = by_family.get(family_id, [])
        wanted += [(h.asset_id, t) for h in hits for t in h.moments_at]
        if family_id not in picture_by_family and hits:
            wanted.append((hits[0].asset_id, None))
    moments = moments_of(session, wanted, model, vector)
    results: list[FamilyHit] = []
    for family_id in order:
        seen = picture_by_family.get(family_id)
        hits = by_family.get(family_id, [])
        annotated = [moments[(h.asset_id, t)] for h in hits for t in h.moments_at if (h.asset_id, t) in moments]
        if seen is None:
            if family_id not in found:
                continue  # gone meanwhile
            first = moments.get((hits[0].asset_id, None))
            base = FamilyHit(
                rank=0,
                score=0.0,
                family=found[family_id],
                moments=_first([*annotated, *([first] if first else [])], options.moments),
            )
        else:
            base = dataclasses.replace(seen, moments=_first(annotated + list(seen.moments), options.moments))
        results.append(
            dataclasses.replace(
                base,
                rank=len(results) + 1,
                words=tuple(dict.fromkeys(w for h in hits for w in h.words)),
                named=family_id in named,
            )
        )
    return results


def _first(moments: list[MomentHit], n: int) -> tuple[MomentHit, ...]:
    """The first ``n`` distinct moments, in the order given."""
    kept: dict[tuple[int, float], MomentHit] = {}
    for moment in moments:
        kept.setdefault((moment.asset_id, moment.frame_s), moment)
    return tuple(kept.values())[:n]
