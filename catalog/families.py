"""Asset families: a master and every rendition made from it, with provenance."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from catalog import proxies
from catalog.assets import asset_by_path
from catalog.errors import NotFoundError
from catalog.results import Family, RenditionInfo, Version
from catalog.storages import Mounts, mounts_of
from catalog.tables import Asset, MomentView, Proxy, Rendition


def _ratio(value: Fraction | None) -> str | None:
    return f"{value.numerator}:{value.denominator}" if value else None


def version_of(
    asset: Asset, mounts: Mounts, rendition: RenditionInfo | None = None, proxy: Proxy | None = None
) -> Version:
    """A file as people see it: its size as displayed (square pixels, upright), so a phone
    clip coded 1280x544 with rotation 270 is 544x1280 (17:40); ``footage show`` has the coded facts."""
    picture = asset.picture
    width, height = picture.display_size if picture else (None, None)
    return Version(
        asset_id=asset.id,
        kind=asset.kind,
        path=mounts.shown_file(asset),
        status=asset.status,
        width=width,
        height=height,
        display_aspect_ratio=_ratio(picture.display_aspect_ratio if picture else None),
        video_codec=asset.video_codec,
        frame_rate=(
            str(Fraction(asset.frame_rate_num, asset.frame_rate_den))
            if asset.frame_rate_num and asset.frame_rate_den
            else None
        ),
        duration_s=asset.duration_s,
        size_bytes=asset.size_bytes,
        rendition=rendition,
        proxy=proxies.info(proxy, asset.kind, mounts) if proxy is not None else None,
        browser_plays=proxies.browser_plays(asset) if asset.video_codec else None,
        timecode=asset.timecode,
    )


def rendition_info(r: Rendition) -> RenditionInfo:
    return RenditionInfo(
        rendition_id=r.id,
        label=r.label,
        target_width=r.target_width,
        target_height=r.target_height,
        model_name=r.model_name,
        model_sha256=r.model_sha256,
        parameters=r.parameters,
        status=r.status,
        progress=r.progress,
        error=r.error,
        requested_at=r.requested_at,
        finished_at=r.finished_at,
        provenance=r.provenance,
        credentials=_credentials(r),
    )


def _credentials(r: Rendition) -> str | None:
    if r.status != "done" or "model" not in r.provenance:  # not written yet, or made by another tool
        return None
    signed = r.provenance.get("credentials")
    if not signed:
        return "unsigned"
    return "signed (self-made)" if signed.get("self_made") else "signed"


def _pending_version(r: Rendition) -> Version:
    return Version(
        None,
        "rendition",
        None,
        r.status,
        r.target_width,
        r.target_height,
        None,
        None,
        None,
        None,
        None,
        rendition_info(r),
    )


# Made once: building an alias costs about 2 ms, as much as the query (every search lists families).
_RENDITION_FILE = aliased(Asset)
_MASTER_PROXY = aliased(Proxy)
_RENDITION_PROXY = aliased(Proxy)


def families(session: Session, master_ids: Iterable[int]) -> dict[int, Family]:
    """The families of the given masters, renditions newest first."""
    ids = sorted(set(master_ids))
    if not ids:
        return {}
    file, master_proxy, file_proxy = _RENDITION_FILE, _MASTER_PROXY, _RENDITION_PROXY
    # One query for masters, renditions and their proxies: every search lists families, and a
    # round trip is a tenth of a search's time.
    rows = session.execute(
        sa.select(Asset, master_proxy, Rendition, file, file_proxy)
        .outerjoin(master_proxy, master_proxy.source_id == Asset.id)
        .outerjoin(Rendition, Rendition.master_id == Asset.id)
        .outerjoin(file, file.id == Rendition.rendition_asset_id)
        .outerjoin(file_proxy, file_proxy.source_id == file.id)
        .where(Asset.id.in_(ids))
        .order_by(Rendition.requested_at.desc(), Rendition.id.desc())
    ).all()
    mounts = mounts_of(session)
    masters: dict[int, tuple[Asset, Proxy | None]] = {}
    renditions: dict[int, list[Version]] = {i: [] for i in ids}
    for master, proxy, rendition, asset, rendition_proxy in rows:
        masters[master.id] = (master, proxy)
        if rendition is not None:
            info = rendition_info(rendition)
            renditions[master.id].append(
                version_of(asset, mounts, info, rendition_proxy) if asset else _pending_version(rendition)
            )
    return {
        i: Family(version_of(masters[i][0], mounts, proxy=masters[i][1]), tuple(renditions[i]))
        for i in ids
        if i in masters
    }


def family_master_id(session: Session, asset_id: int) -> int:
    """The master of an asset's family: its own id for a master or an unlinked file."""
    master = session.scalar(sa.select(Rendition.master_id).where(Rendition.rendition_asset_id == asset_id))
    return int(master) if master is not None else asset_id


def resolve_asset(session: Session, ref: str) -> Asset:
    """An asset by id (digits) or by path; ``NotFoundError`` names what was asked for."""
    asset: Asset | None = None
    if ref.isdigit():
        asset = session.get(Asset, int(ref))
    if asset is None:
        with contextlib.suppress(NotFoundError):
            asset = asset_by_path(session, ref)  # this host's path, or storage:path
    if asset is None:
        raise NotFoundError(f"no asset with id or path {ref!r} in the catalog")
    return asset


@dataclass(frozen=True)
class AssetDetails:
    """Everything ``footage show`` tells about one asset."""

    facts: dict[str, Any]
    segments_by_model: dict[str, int]
    family: Family
    # Per model, each moment in time order: {"start_s", "end_s", "frame_s", "views"}.
    moments_by_model: dict[str, list[dict[str, float | int]]] = field(default_factory=dict)


def asset_details(session: Session, ref: str) -> AssetDetails:
    asset = resolve_asset(session, ref)
    facts = {c.key: getattr(asset, c.key) for c in sa.inspect(Asset).mapper.column_attrs}
    # Where the asking host has the file (``storage:path`` where it does not mount the storage).
    mounts = mounts_of(session)
    facts["path"] = mounts.shown_file(asset)
    facts["storage"] = mounts.storage(asset.storage_id).name
    counts = dict(
        session.execute(
            sa.select(MomentView.embedding_model, sa.func.count())
            .where(MomentView.asset_id == asset.id)
            .group_by(MomentView.embedding_model)
        ).all()
    )
    moments: dict[str, list[dict[str, float | int]]] = {}
    for model, start_s, end_s, frame_s, views in session.execute(
        sa.select(MomentView.embedding_model, MomentView.start_s, MomentView.end_s, MomentView.frame_s, sa.func.count())
        .where(MomentView.asset_id == asset.id)
        .group_by(MomentView.embedding_model, MomentView.start_s, MomentView.end_s, MomentView.frame_s)
        .order_by(MomentView.embedding_model, MomentView.start_s)
    ).all():
        moments.setdefault(model, []).append({"start_s": start_s, "end_s": end_s, "frame_s": frame_s, "views": views})
    master_id = family_master_id(session, asset.id)
    return AssetDetails(
        facts=facts,
        segments_by_model=counts,
        family=families(session, [master_id])[master_id],
        moments_by_model=moments,
    )
