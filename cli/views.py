"""How families, versions and moments look in a terminal."""

from __future__ import annotations

from rich.text import Text

from catalog.results import Family, Version


def resolution(version: Version) -> str:
    if not version.width or not version.height:
        return "-"
    dar = f" ({version.display_aspect_ratio})" if version.display_aspect_ratio else ""
    return f"{version.width}x{version.height}{dar}"


def status(version: Version) -> Text:
    """A master's state is its file's; a rendition's is the rendition's (done, running, failed),
    with its file's when that is what matters (missing, or still being indexed), and its
    Content Credentials once done."""
    state = version.status
    if version.rendition is not None and version.status not in ("missing", "error"):
        state = version.rendition.status
        if state == "done" and version.status == "pending":
            state = "done, indexing"
        if version.rendition.credentials is not None:
            state = f"{state}, {version.rendition.credentials}"
    return Text(state, style="red" if state in ("missing", "error", "failed") else "")


def version_label(version: Version) -> str:
    if version.rendition is None:
        return version.path or "-"
    r = version.rendition
    where = version.path or f"(not written yet, {r.progress:.0%})"
    return f"↳ {r.label} by {r.model_name}: {where}"


def proxy_row(version: Version) -> tuple[str, str, str, Text] | None:
    """A version's proxy as a row under it, or None when it has none."""
    p = version.proxy
    if p is None:
        return None
    where = p.path or f"(not written yet, {p.status})"
    label = f"  ⤷ proxy{' (AI-processed)' if p.ai_processed else ''}: {where}"
    size = f"{p.width}x{p.height}" if p.width and p.height else "-"
    state = p.status if p.error is None else f"{p.status}: {p.error}"
    return label, size, p.video_codec or "-", Text(state, style="red" if p.status == "failed" else "")


def family_rows(family: Family, proxies: bool = False) -> list[tuple[str, str, str, Text]]:
    """(what, resolution, codec, status) rows: the master, then each rendition; with ``proxies``
    each version's proxy under it."""
    rows = []
    for version in (family.master, *family.renditions):
        rows.append((version_label(version), resolution(version), version.video_codec or "-", status(version)))
        if proxies and (row := proxy_row(version)) is not None:
            rows.append(row)
    return rows
