"""The word side of search: what an asset is called, what its metadata says and what
people wrote about it, in one PostgreSQL full-text document per asset.

Names are split the way camera and editorial names are written: ``A003C012_230101_R2AB``
gives ``a003c012``, ``a003``, ``c012``, ``230101``, ``r2ab``, ``r2`` and ``ab``, so a
part of a clip name is a whole word to the index and needs no trigram search (the
embedded server has no pg_trgm). A query word of three letters or more also matches
as a prefix (``A00`` finds ``A003``): GIN answers prefixes of lexemes, never infixes.

``named`` results are files whose own name (not a folder) holds a query word exactly.
The document's weights say where a word came from: A name and folders, B tags, C notes,
D metadata; ``name:``, ``tag:``, ``note:`` and ``meta:`` restrict a term to its weight.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from catalog.errors import FootageError

FIELDS = {"name": "A", "tag": "B", "note": "C", "meta": "D"}
# Separators of names and metadata; everything else is part of a word, letters of any
# script included (``Ünïcødé`` stays one word).
_SEPARATORS = re.compile(r"[\s_.,;:/\\|+&#!?\"'()\[\]{}<>=*~`^$%@-]+")
# Camera-style compounds: runs of letters followed by digits (``A003`` ``C012``), digits alone.
_PARTS = re.compile(r"[^\d]+\d+|\d+|[^\d]+")
# Folder names taken from a path outside any watched folder: the nearest ones say the most.
_FOLDERS_WITHOUT_ROOT = 3
# Container and stream tags whose values people search for; the last dotted part of a
# key is compared (``com.apple.quicktime.model`` is ``model``).
META_KEYS = frozenset(
    {
        "title",
        "comment",
        "description",
        "synopsis",
        "keywords",
        "reel_name",
        "reel",
        "tape",
        "tape_name",
        "make",
        "model",
        "camera_make",
        "camera_model",
        "encoder",
        "creation_time",
        "author",
        "artist",
        "album",
        "copyright",
        "location",
        "software",
    }
)
# Prefix matching starts at this length: ``a:*`` would match half the catalog.
_MIN_PREFIX = 3
# Files ranked by their words per query, of those holding every term and of those holding
# any, beside every file a query word names: ranking reads each matching document, and a
# word found in thousands of files (a camera letter, a day's folder) says little about which
# one is meant. At 10^5 assets (bench/search_latency.py --words) words in 28,668 files took
# 48 ms to rank in full.
RANKED_AT_MOST = 2000


class QuerySyntaxError(FootageError):
    """A query footage cannot read (an unclosed quote, an unknown ``field:``)."""

    exit_code = 2


def split_words(text: str) -> list[str]:
    """Lower-case words of ``text``, camera-style compounds also split into their parts;
    in order of appearance, without repeats."""
    found: dict[str, None] = {}
    for chunk in _SEPARATORS.split(text):
        if not chunk:
            continue
        found[chunk.lower()] = None
        parts = _PARTS.findall(chunk)
        if len(parts) > 1:
            found.update((p.lower(), None) for p in parts)
    return list(found)


def name_words(path: str) -> list[str]:
    """Words of a file's own name (without its extension)."""
    return split_words(PurePosixPath(path).stem)


def folder_words(path: str, root: str | None) -> list[str]:
    """Words of the folders a file sits in: below its watched folder when it has one, else
    the nearest few."""
    file = PurePosixPath(path)
    if root is not None and file.is_relative_to(root):
        folders = file.relative_to(root).parent.parts
    else:
        folders = file.parent.parts[1:][-_FOLDERS_WITHOUT_ROOT:]
    return split_words(" ".join(folders))


def meta_words(tags: Mapping[str, str]) -> list[str]:
    """Words of the container and stream tags people search by (title, reel, camera...)."""
    wanted = [value for key, value in tags.items() if key.lower().rsplit(".", 1)[-1] in META_KEYS]
    return split_words(" ".join(wanted))


# to_tsvector over the words joined (not array_to_tsvector): lexemes need positions to
# carry a weight, and a lexeme without one matches a query of any weight.
_DOCUMENT = """
    setweight(to_tsvector('simple', array_to_string(w.name_words || w.folder_words, ' ')), 'A')
    || setweight(to_tsvector('simple', COALESCE(
        (SELECT string_agg(t.word, ' ') FROM tags t WHERE t.asset_id = w.asset_id), '')), 'B')
    || setweight(to_tsvector('simple', COALESCE(
        (SELECT string_agg(n.text, ' ') FROM notes n WHERE n.asset_id = w.asset_id), '')), 'C')
    || setweight(to_tsvector('simple', array_to_string(w.meta_words, ' ')), 'D')
"""


def refresh_words(session: Session | Connection, asset_ids: Iterable[int], meta: Sequence[str] | None = None) -> None:
    """Rebuild the word documents of ``asset_ids`` from their paths, tags and notes (and
    ``meta``, the metadata words of a fresh index, when given; else the stored ones)."""
    ids = sorted(set(asset_ids))
    if not ids:
        return
    rows = session.execute(
        sa.text(
            # Paths inside the file's storage, as if it were mounted at /: the same words on every host.
            "SELECT a.id, '/' || a.rel_path AS path,"
            " CASE WHEN r.storage_id = a.storage_id THEN '/' || r.rel_path END AS root"
            " FROM assets a LEFT JOIN roots r ON r.id = a.root_id WHERE a.id = ANY(:ids)"
        ),
        {"ids": ids},
    ).all()
    values = [
        {"id": r.id, "names": name_words(r.path), "folders": folder_words(r.path, r.root), "meta": list(meta or [])}
        for r in rows
    ]
    if not values:
        return
    keep_meta = meta is None
    session.execute(
        sa.text(
            f"""
            INSERT INTO asset_words (asset_id, name_words, folder_words, meta_words)
            VALUES (:id, :names, :folders, :meta)
            ON CONFLICT (asset_id) DO UPDATE
            SET name_words = excluded.name_words, folder_words = excluded.folder_words
            {"" if keep_meta else ", meta_words = excluded.meta_words"}
            """
        ),
        values,
    )
    session.execute(
        sa.text(f"UPDATE asset_words w SET document = {_DOCUMENT} WHERE w.asset_id = ANY(:ids)"), {"ids": ids}
    )


def refresh_all_words(connection: Connection, batch: int = 1000) -> None:
    """Every asset's words (a migration's backfill): in batches, so memory stays flat."""
    last = 0
    while True:
        ids = (
            connection.execute(
                sa.text("SELECT id FROM assets WHERE id > :last ORDER BY id LIMIT :n"), {"last": last, "n": batch}
            )
            .scalars()
            .all()
        )
        if not ids:
            return
        refresh_words(connection, ids)
        last = ids[-1]


@dataclass(frozen=True)
class Term:
    """One word of a query: ``field`` restricts it (None: anywhere), ``phrase`` keeps its
    words together in that order (a quoted term)."""

    words: tuple[str, ...]
    field: str | None = None

    def tsquery(self) -> str:
        weight = FIELDS[self.field] if self.field else ""
        parts = []
        for word in self.words:
            label = ("*" if len(word) >= _MIN_PREFIX else "") + weight
            parts.append(_lexeme(word) + (":" + label if label else ""))
        return "(" + " & ".join(parts) + ")" if len(parts) > 1 else parts[0]


def _lexeme(word: str) -> str:
    return "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"


@dataclass(frozen=True)
class WordsQuery:
    """A search text read for both sides: the terms the word side matches and the plain
    text the picture side embeds (restricted terms are not about the picture)."""

    terms: tuple[Term, ...]
    picture_text: str

    @property
    def tsquery(self) -> str:
        return " | ".join(t.tsquery() for t in self.terms)

    @property
    def name_exact(self) -> list[str]:
        """Words that name a file when a name holds exactly them (unrestricted or ``name:``)."""
        return [w for t in self.terms if t.field in (None, "name") and len(t.words) == 1 for w in t.words]


def parse_query(text: str, stop_words: Iterable[str] = ()) -> WordsQuery:
    """``sc12_tk3 "hero shot" name:A003 note:"client liked"`` read into terms and picture text.
    A quoted phrase is one term (all its words); ``stop_words`` (the, of, a...) are left to
    the picture side: as names they find nothing worth ranking."""
    try:
        pieces = shlex.split(text, posix=True)
    except ValueError as exc:
        raise QuerySyntaxError(f"cannot read the search {text!r}: {exc} (close the quote)") from exc
    stop = {w.lower() for w in stop_words}
    terms: list[Term] = []
    plain: list[str] = []
    for piece in pieces:
        field, sep, rest = piece.partition(":")
        restricted = bool(sep) and field.lower() in FIELDS and bool(rest)
        if sep and not restricted and field.isalpha() and not rest.startswith("//"):
            known = ", ".join(f"{f}:" for f in FIELDS)
            raise QuerySyntaxError(f"unknown field {field + ':'!r} in the search; known: {known}")
        value = rest if restricted else piece
        words = [w.lower() for w in _SEPARATORS.split(value) if w]
        where = field.lower() if restricted else None
        if not restricted:
            plain.append(piece)
        if " " in value.strip():  # quoted: one phrase
            if words:
                terms.append(Term(tuple(words), where))
        else:
            terms.extend(Term((w,), where) for w in words if restricted or w not in stop)
    return WordsQuery(tuple(dict.fromkeys(terms)), " ".join(plain))


# What PostgreSQL's English dictionary said of each word asked about (True: a stop word),
# kept for the process: the dictionary does not change under it, and most queries reuse words.
_STOP_WORDS: dict[str, bool] = {}
_STOP_WORDS_KEPT = 100_000


def stop_words(session: Session, text: str) -> set[str]:
    """The words of ``text`` that PostgreSQL's English dictionary drops as stop words."""
    words = {w.lower() for w in _SEPARATORS.split(text) if w}
    unknown = [w for w in words if w not in _STOP_WORDS]
    if unknown:
        if len(_STOP_WORDS) > _STOP_WORDS_KEPT:
            _STOP_WORDS.clear()
        rows = session.execute(
            # An empty lexeme list is the dictionary's verdict "stop word".
            sa.text("SELECT w, ts_lexize('english_stem', w) = '{}' FROM unnest(CAST(:words AS text[])) AS t(w)"),
            {"words": unknown},
        )
        _STOP_WORDS.update((w, bool(stop)) for w, stop in rows)
    return {w for w in words if _STOP_WORDS.get(w)}


@dataclass(frozen=True)
class WordHit:
    """An asset the word side found: its family, its rank score, the query terms it matched,
    whether a name holds a query word exactly, and the moments whose notes or tags matched."""

    asset_id: int
    family_id: int
    rank: float
    words: tuple[str, ...]
    named: bool
    moments_at: tuple[float, ...]


def search_words(
    session: Session, query: WordsQuery, limit: int, filters_sql: str, params: dict[str, Any]
) -> list[WordHit]:
    """The best ``limit`` assets for ``query``'s terms; a file a query word names comes first.
    ``filters_sql`` and ``params`` restrict assets ``a`` (with ``link``, its rendition row)."""
    if not query.terms:
        return []
    params = {**params, "q": query.tsquery, "exact": query.name_exact, "n": limit}
    # With filters every match is ranked: a cap taken before them could leave none that pass.
    params["cap"] = RANKED_AT_MOST if not filters_sql else None
    params["q_all"] = " & ".join(f"({t.tsquery()})" for t in query.terms)
    any_branch = (
        """UNION ALL
                (SELECT w.asset_id, w.document, 0 FROM asset_words w
                 WHERE w.document @@ CAST(:q AS tsquery) AND NOT w.document @@ CAST(:q_all AS tsquery)
                   AND NOT w.name_words && CAST(:exact AS text[])
                 LIMIT :cap)"""
        if len(query.terms) > 1
        else ""
    )
    matched = []
    for i, term in enumerate(query.terms):
        params[f"t{i}"] = term.tsquery()
        matched.append(f"w.document @@ CAST(:t{i} AS tsquery)")
    # Ranked first, then the matched terms and the annotated moments of the page kept only:
    # a short word can match thousands of files.
    rows = session.execute(
        sa.text(
            f"""
            WITH matching AS MATERIALIZED (
                -- Files a query word names (through their own small index), then those that
                -- hold every term, then any: at most :cap of each of the last two, each file
                -- read once with its document.
                (SELECT w.asset_id, w.document, 2 AS tier FROM asset_words w
                 WHERE w.name_words && CAST(:exact AS text[]) AND w.document @@ CAST(:q AS tsquery))
                UNION ALL
                (SELECT w.asset_id, w.document, 1 FROM asset_words w
                 WHERE w.document @@ CAST(:q_all AS tsquery) AND NOT w.name_words && CAST(:exact AS text[])
                 LIMIT :cap)
                {any_branch}
            ),
            ranked AS (
                SELECT m.asset_id, m.tier, ts_rank(m.document, CAST(:q AS tsquery)) AS rank FROM matching m
                ORDER BY m.tier DESC, rank DESC, m.asset_id
                {"" if filters_sql else "LIMIT :n * 4  -- room for files not indexed (yet)"}
            ),
            top AS (
                SELECT a.id AS asset_id, COALESCE(link.master_id, a.id) AS family_id,
                       m.rank, m.tier = 2 AS named, m.tier
                FROM ranked m
                JOIN assets a ON a.id = m.asset_id
                LEFT JOIN renditions link ON link.rendition_asset_id = a.id
                WHERE a.status IN ('indexed', 'missing') {filters_sql}
                ORDER BY m.tier DESC, m.rank DESC, a.id
                LIMIT :n
            )
            SELECT top.*, ARRAY[{", ".join(matched)}] AS matched,
                   ARRAY(
                       SELECT n.at_s FROM notes n
                       WHERE n.asset_id = top.asset_id AND n.at_s IS NOT NULL
                         AND setweight(to_tsvector('simple', n.text), 'C') @@ CAST(:q AS tsquery)
                       UNION
                       SELECT t.at_s FROM tags t
                       WHERE t.asset_id = top.asset_id AND t.at_s IS NOT NULL
                         AND setweight(to_tsvector('simple', t.word), 'B') @@ CAST(:q AS tsquery)
                       ORDER BY 1
                   ) AS moments_at
            FROM top JOIN asset_words w ON w.asset_id = top.asset_id
            ORDER BY top.tier DESC, top.rank DESC, top.asset_id
            """
        ),
        params,
    ).all()
    return [
        WordHit(
            r.asset_id,
            r.family_id,
            float(r.rank),
            tuple(" ".join(t.words) for t, hit in zip(query.terms, r.matched, strict=True) if hit),
            bool(r.named),
            tuple(float(t) for t in r.moments_at),
        )
        for r in rows
    ]
