"""Selections: named, ordered collections of moments (or whole assets) a team shares.

An entry holds the asset, not its path, so a file moved or renamed stays in every
selection it was put in; a deleted file's entry stays too (its asset is kept, missing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from catalog.errors import NotFoundError
from catalog.families import families, family_master_id
from catalog.results import FamilyHit
from catalog.search import moments_of, whole_asset
from catalog.storages import mounts_of
from catalog.tables import Asset, Selection, SelectionItem


@dataclass(frozen=True)
class SelectionEntry:
    """One entry, in its selection's order: the moment at ``at_s`` or (None) the whole asset."""

    position: int
    asset_id: int
    at_s: float | None
    path: str
    status: str
    author: str


@dataclass(frozen=True)
class SelectionSummary:
    name: str
    entries: int
    author: str
    created_at: datetime
    updated_at: datetime


def selection_named(session: Session, name: str, *, lock: bool = False) -> Selection:
    query = sa.select(Selection).where(Selection.name == name)
    found = session.scalar(query.with_for_update() if lock else query)
    if found is None:
        known = session.scalars(sa.select(Selection.name).order_by(Selection.name).limit(10)).all()
        hint = f"; there are: {', '.join(known)}" if known else "; there are none yet (make one with `footage select`)"
        raise NotFoundError(f"no selection named {name!r}{hint}")
    return found


def add_to_selection(session: Session, name: str, items: Sequence[tuple[int, float | None]], author: str) -> int:
    """Append ``items`` (asset id, time or None) to the selection ``name``, made if new;
    an entry it already holds is not added twice. Returns how many were added."""
    session.execute(
        insert(Selection).values(name=name, author=author).on_conflict_do_nothing(index_elements=[Selection.name])
    )
    selection = selection_named(session, name, lock=True)  # one writer at a time keeps positions dense
    held = {
        (r.asset_id, r.at_s)
        for r in session.execute(
            sa.select(SelectionItem.asset_id, SelectionItem.at_s).where(SelectionItem.selection_id == selection.id)
        )
    }
    last = session.scalar(
        sa.select(sa.func.max(SelectionItem.position)).where(SelectionItem.selection_id == selection.id)
    )
    position = 0 if last is None else last + 1
    added = 0
    for asset_id, at_s in dict.fromkeys(items):
        if (asset_id, at_s) in held:
            continue
        session.add(
            SelectionItem(
                selection_id=selection.id, position=position + added, asset_id=asset_id, at_s=at_s, author=author
            )
        )
        added += 1
    selection.updated_at = sa.func.now()
    session.flush()
    return added


def entries(session: Session, name: str) -> list[SelectionEntry]:
    selection = selection_named(session, name)
    rows = session.execute(
        sa.select(SelectionItem, Asset.storage_id, Asset.rel_path, Asset.status)
        .join(Asset, Asset.id == SelectionItem.asset_id)
        .where(SelectionItem.selection_id == selection.id)
        .order_by(SelectionItem.position)
    ).all()
    mounts = mounts_of(session)
    return [
        SelectionEntry(i.position, i.asset_id, i.at_s, mounts.shown(storage, rel), status, i.author)
        for i, storage, rel, status in rows
    ]


def reorder(session: Session, name: str, order: list[int]) -> None:
    """Put the entries in ``order`` (their current positions, each once)."""
    selection = selection_named(session, name, lock=True)
    items = {
        i.position: i
        for i in session.scalars(sa.select(SelectionItem).where(SelectionItem.selection_id == selection.id))
    }
    if sorted(order) != sorted(items):
        raise NotFoundError(f"selection {name!r} has entries {sorted(items)}; the new order must name each once")
    rows = [(items[old].asset_id, items[old].at_s, items[old].author) for old in order]
    session.execute(sa.delete(SelectionItem).where(SelectionItem.selection_id == selection.id))
    session.add_all(
        SelectionItem(selection_id=selection.id, position=p, asset_id=a, at_s=t, author=who)
        for p, (a, t, who) in enumerate(rows)
    )
    selection.updated_at = sa.func.now()
    session.flush()


def summaries(session: Session) -> list[SelectionSummary]:
    count = sa.func.count(SelectionItem.position)
    rows = session.execute(
        sa.select(Selection, count)
        .outerjoin(SelectionItem, SelectionItem.selection_id == Selection.id)
        .group_by(Selection.id)
        .order_by(Selection.updated_at.desc(), Selection.name)
    ).all()
    return [SelectionSummary(s.name, n, s.author, s.created_at, s.updated_at) for s, n in rows]


def selection_hits(session: Session, name: str, model: str) -> list[FamilyHit]:
    """The selection's entries as search results in its order (rank = position + 1), one
    moment each, for the edit-list exports and the page."""
    listed = entries(session, name)
    masters = {e.asset_id: family_master_id(session, e.asset_id) for e in listed}
    found = families(session, masters.values())
    moments = moments_of(session, [(e.asset_id, e.at_s) for e in listed if e.at_s is not None], model, None)
    hits: list[FamilyHit] = []
    for entry in listed:
        if entry.at_s is None:
            moment = whole_asset(session, entry.asset_id)
        else:
            moment = moments.get((entry.asset_id, entry.at_s))
        family = found.get(masters[entry.asset_id])
        if family is not None and moment is not None:
            hits.append(FamilyHit(rank=entry.position + 1, score=0.0, family=family, moments=(moment,)))
    return hits
