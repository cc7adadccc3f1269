"""Notes and tags people put on assets and moments: who, when, and searchable at once (each
change rebuilds the asset's word document in the same transaction)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from catalog.errors import FootageError, NotFoundError
from catalog.results import Annotation
from catalog.tables import Asset, Note, Tag
from catalog.words import refresh_words


class AnnotationError(FootageError):
    """A note or tag footage will not keep (empty, a tag with spaces, a time outside the asset)."""

    exit_code = 2


def _checked_time(asset: Asset, at_s: float | None) -> float | None:
    if at_s is None:
        return None
    if at_s < 0 or (asset.duration_s is not None and at_s > asset.duration_s):
        length = f"{asset.duration_s:.1f}" if asset.duration_s is not None else "?"
        raise AnnotationError(f"asset {asset.id} is {length} s long; {at_s:g} s is outside it")
    return at_s


def add_note(session: Session, asset: Asset, at_s: float | None, text: str, author: str) -> Annotation:
    if not text.strip():
        raise AnnotationError("the note is empty; write what should be remembered about the shot")
    note = Note(asset_id=asset.id, at_s=_checked_time(asset, at_s), text=text.strip(), author=author)
    session.add(note)
    session.flush()
    refresh_words(session, [asset.id])
    return Annotation("note", note.id, asset.id, note.at_s, note.text, author, note.created_at)


def add_tags(session: Session, asset: Asset, at_s: float | None, words: list[str], author: str) -> list[str]:
    """Tag ``asset`` (or its moment) with ``words``; returns those new to it (a tag is kept once)."""
    cleaned = list(dict.fromkeys(w.strip().lower() for w in words if w.strip()))
    bad = [w for w in cleaned if any(c.isspace() for c in w)]
    if bad or not cleaned:
        raise AnnotationError(f"a tag is one word; got {bad or words!r} (use a note for sentences)")
    at = _checked_time(asset, at_s)
    statement = insert(Tag).values([{"asset_id": asset.id, "at_s": at, "word": w, "author": author} for w in cleaned])
    added = session.scalars(statement.on_conflict_do_nothing().returning(Tag.word)).all()
    refresh_words(session, [asset.id])
    return [w for w in cleaned if w in set(added)]


def remove_tags(session: Session, asset: Asset, at_s: float | None, words: list[str]) -> list[str]:
    """Take ``words`` off ``asset`` (or its moment); returns those it had."""
    at = Tag.at_s.is_(None) if at_s is None else Tag.at_s == at_s
    removed = session.scalars(
        sa.delete(Tag)
        .where(Tag.asset_id == asset.id, at, Tag.word.in_([w.strip().lower() for w in words]))
        .returning(Tag.word)
    ).all()
    refresh_words(session, [asset.id])
    return list(removed)


def remove_note(session: Session, asset_id: int, note_id: int) -> None:
    removed = session.scalar(sa.delete(Note).where(Note.id == note_id, Note.asset_id == asset_id).returning(Note.id))
    if removed is None:
        raise NotFoundError(f"asset {asset_id} has no note {note_id}")
    refresh_words(session, [asset_id])


def annotations_of(session: Session, asset_ids: list[int]) -> dict[int, list[Annotation]]:
    """Every note and tag of ``asset_ids``, oldest first."""
    found: dict[int, list[Annotation]] = {i: [] for i in asset_ids}
    for note in session.scalars(sa.select(Note).where(Note.asset_id.in_(asset_ids)).order_by(Note.created_at, Note.id)):
        found[note.asset_id].append(
            Annotation("note", note.id, note.asset_id, note.at_s, note.text, note.author, note.created_at)
        )
    for tag in session.scalars(sa.select(Tag).where(Tag.asset_id.in_(asset_ids)).order_by(Tag.created_at, Tag.id)):
        found[tag.asset_id].append(
            Annotation("tag", tag.id, tag.asset_id, tag.at_s, tag.word, tag.author, tag.created_at)
        )
    for listed in found.values():
        listed.sort(key=lambda a: (a.created_at, a.kind, a.id))
    return found
