"""The catalogued files the page reads: thumbnails, frames, the files themselves, their proxies
and Content Credentials. Each is found by asset id, never by a path from the request, and only
where this host serves its storage."""

from __future__ import annotations

import io
import mimetypes
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from catalog import Asset, Catalog
from catalog.storages import StorageUnavailableError
from catalog.thumbnails import written_thumbnail
from cli.answers import answer


def thumbnail(catalog: Catalog, request: Request) -> Response:
    """A moment's thumbnail: its path is built from two integers, never from a path in the
    request, and only for an asset the catalog holds."""
    asset_id, frame_ms = int(request.path_params["asset_id"]), int(request.path_params["frame_ms"])
    found = written_thumbnail(catalog.thumbnail_dirs(), asset_id, frame_ms / 1000)
    with catalog.session() as session:
        known = session.get(Asset, asset_id) is not None
    if found is None or not known:
        return answer({"error": "no such thumbnail", "exit_code": 1}, 404)
    return FileResponse(found, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})


def catalogued_file(catalog: Catalog, asset_id: int) -> Path | None:
    """The file of an indexed asset, when this host serves its storage: the only files the page reads."""
    with catalog.session() as session:
        asset = session.get(Asset, asset_id)
        if asset is None or asset.status != "indexed":
            return None
    try:
        path = catalog.mounts.file(asset)
    except StorageUnavailableError:
        return None
    return path if path.is_file() else None


def frame(catalog: Catalog, request: Request) -> Response:
    """A catalogued file's frame at a time, as a player shows it, at the file's own resolution:
    the file is found by asset id, never by a path from the request."""
    from upscaler.preview import displayed_frame

    path = catalogued_file(catalog, int(request.path_params["asset_id"]))
    if path is None:
        return answer({"error": "no such catalogued file here", "exit_code": 1}, 404)
    image, _ = displayed_frame(path, int(request.path_params["frame_ms"]) / 1000)
    body = io.BytesIO()
    image.save(body, format="JPEG", quality=92)
    return Response(body.getvalue(), media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})


def media(catalog: Catalog, request: Request) -> Response:
    """A catalogued file itself, for the browser to play, with HTTP range requests: found by
    asset id, never by a path from the request."""
    path = catalogued_file(catalog, int(request.path_params["asset_id"]))
    if path is None:
        return answer({"error": "no such catalogued file here", "exit_code": 1}, 404)
    return FileResponse(path, media_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream")


def proxy(catalog: Catalog, request: Request) -> Response:
    """A version's proxy, for browsers that cannot play the version itself: found by the
    version's asset id, never by a path from the request."""
    from catalog import proxies

    asset_id = int(request.path_params["asset_id"])
    with catalog.session() as session:
        proxy = proxies.of_versions(session, [asset_id]).get(asset_id)
        if proxy is None or proxy.status != "done" or proxy.storage_id is None or proxy.rel_path is None:
            return answer({"error": "this version has no proxy yet", "exit_code": 1}, 404)
        try:
            path = catalog.mounts.path(proxy.storage_id, proxy.rel_path)
        except StorageUnavailableError:
            return answer({"error": "this host does not serve the proxy's storage", "exit_code": 1}, 404)
    if not path.is_file():
        return answer({"error": "the proxy's file is gone", "exit_code": 1}, 404)
    return FileResponse(path, media_type="video/mp4")


def credentials(catalog: Catalog, request: Request) -> Response:
    """A catalogued file's Content Credentials, read from the file now and told in words."""
    from cli.settings import signing_settings
    from upscaler.identity import trust_anchors
    from upscaler.verify import verify_file

    path = catalogued_file(catalog, int(request.path_params["asset_id"]))
    if path is None:
        return answer({"error": "no such catalogued file here", "exit_code": 1}, 404)
    return answer(verify_file(path, trust_anchors(signing_settings())))
