"""``footage proxy``: make proxies now, in this process."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from catalog import Catalog, FootageError, open_catalog
from catalog import proxies as records
from catalog.families import resolve_asset
from catalog.tables import Asset, ProxyStatus
from cli.output import JSON_OPTION, print_json, print_table, stdout
from cli.progress import fraction_progress
from cli.settings import catalog_settings, proxy_mode, renditions_dir


def proxy(
    assets: Annotated[
        list[str] | None, typer.Argument(help="Versions (master or rendition, id or path) to make a proxy of.")
    ] = None,
    missing: Annotated[
        bool,
        typer.Option(
            "--missing",
            help="Make every missing proxy: of each rendition and of each master the browsers cannot play "
            "(of every version with FOOTAGE_PROXIES=all).",
        ),
    ] = False,
    as_json: bool = JSON_OPTION,
) -> None:
    """Make proxies now: small H.264 files (at most 1280x720, AAC stereo, a keyframe a second)
    every browser and editor plays, written to the renditions storage's proxies/ folder and
    listed with their version by show, pairs and the page. A proxy that exists is not made
    again. Workers make them on their own after indexing (FOOTAGE_PROXIES: auto, all, none).
    Exits 1 when any proxy failed.

    Example: footage proxy A001_C003.mov    or    footage proxy --missing
    """
    if not assets and not missing:
        raise typer.BadParameter("name a version (id or path), or give --missing", param_hint="ASSETS")
    with open_catalog(catalog_settings()) as catalog:
        wanted = _wanted(catalog, assets or [], missing)
        outcomes = [_make(catalog, asset_id, name) for asset_id, name in wanted]
    if as_json:
        print_json({"proxies": outcomes})
    elif not outcomes:
        stdout().print("No proxy is missing.")
    else:
        rows = [
            (o["version"], o["outcome"], o.get("path") or o.get("error") or "-", o.get("size") or "-") for o in outcomes
        ]
        print_table("Proxies", ("version", "outcome", "proxy", "size"), rows)
    if any(o["outcome"] == "failed" for o in outcomes):
        raise typer.Exit(1)


def _wanted(catalog: Catalog, refs: list[str], missing: bool) -> list[tuple[int, str]]:
    with catalog.session() as session:
        found: list[Asset] = [resolve_asset(session, ref) for ref in refs]
        if missing:
            found += records.missing(session, proxy_mode())
        mounts = catalog.mounts
        seen: dict[int, str] = {}
        for asset in found:
            seen.setdefault(asset.id, mounts.shown_file(asset))
    return list(seen.items())


def _make(catalog: Catalog, asset_id: int, name: str) -> dict[str, Any]:
    from upscaler.proxy_jobs import make_recorded_proxy

    with catalog.session() as session:
        asked = records.request(session, asset_id)
        existing = records.of_versions(session, [asset_id])[asset_id]
        proxy_id, status = existing.id, existing.status
    if asked is None and status == ProxyStatus.DONE:
        return {"version": name, "outcome": "exists", **_made(catalog, asset_id)}
    if asked is None and status == ProxyStatus.RUNNING:
        return {"version": name, "outcome": "being made by a worker"}
    with fraction_progress() as progress:
        task = progress.add_task(f"proxy of {name}", total=1.0)
        try:
            result = make_recorded_proxy(
                catalog, renditions_dir(), proxy_id, on_progress=lambda f: progress.update(task, completed=min(1.0, f))
            )
        except (FootageError, OSError) as exc:  # recorded; the next version is made all the same
            return {"version": name, "outcome": "failed", "error": str(exc)}
        progress.update(task, completed=1.0)
    if result is None:
        with catalog.session() as session:
            error = records.of_versions(session, [asset_id])[asset_id].error
        return {"version": name, "outcome": "failed", "error": error}
    return {"version": name, "outcome": "made", "seconds": round(result.seconds, 2), **_made(catalog, asset_id)}


def _made(catalog: Catalog, asset_id: int) -> dict[str, Any]:
    with catalog.session() as session:
        proxy = records.of_versions(session, [asset_id])[asset_id]
        source = session.get(Asset, asset_id)
        assert source is not None
        info = records.info(proxy, source.kind, catalog.mounts)
    return {"path": info.path, "size": f"{info.width}x{info.height}", "size_bytes": info.size_bytes}
