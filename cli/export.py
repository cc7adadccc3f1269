"""Search results as edit lists for editors: CMX 3600 EDL and OpenTimelineIO (both written
by ``opentimelineio``), and CSV for spreadsheets.

Each moment becomes a clip of the version it was found in, from its source in
point to its out point in the file's own timecode, in ranking order. A version's proxy
carries the same timecode, so the same points hold in it: OTIO clips carry both files
(OpenTimelineIO's multiple media references, ``DEFAULT_MEDIA`` and ``proxy``), and with
``proxies`` every format points at the proxy where one is made.
"""

from __future__ import annotations

import csv
from fractions import Fraction
from pathlib import Path
from typing import Any

from catalog.errors import ConfigurationError
from catalog.results import FamilyHit, MomentHit, Version

SUFFIXES = {".edl": "cmx_3600", ".otio": "otio_json", ".csv": None}
_CSV_FIELDS = (
    "rank",
    "score",
    "path",
    "asset_id",
    "start_timecode",
    "end_timecode",
    "rate",
    "start_s",
    "end_s",
    "frame_s",
    "thumbnail",
    "original",
    "proxy",
)
PROXY_KEY = "proxy"
# A moment without a frame rate (it never happens to video footage) is placed at this rate.
_FALLBACK_RATE = Fraction(25)


def check_export_path(path: Path) -> None:
    if path.suffix.lower() not in SUFFIXES:
        raise ConfigurationError(f"cannot export to {path.name}: name it .edl (CMX 3600), .otio or .csv")


def proxy_path(hit: FamilyHit, moment: MomentHit) -> str | None:
    """The made proxy of the version a moment was found in, where this host has it."""
    versions: list[Version] = [hit.family.master, *hit.family.renditions]
    version = next((v for v in versions if v.asset_id == moment.asset_id), None)
    proxy = version.proxy if version is not None else None
    if proxy is None or proxy.status != "done" or not proxy.path or not proxy.path.startswith("/"):
        return None
    return proxy.path


def export_hits(hits: list[FamilyHit], path: Path, proxies: bool = False) -> int:
    """Write every moment of ``hits`` to ``path`` (format from its suffix), pointing at the
    proxies where made when ``proxies``; how many were written."""
    check_export_path(path)
    moments = [(hit, moment) for hit in hits for moment in hit.moments]
    adapter = SUFFIXES[path.suffix.lower()]
    if adapter is None:
        with path.open("w", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=_CSV_FIELDS)
            writer.writeheader()
            for hit, moment in moments:
                proxy = proxy_path(hit, moment)
                row = {"rank": hit.rank, **{f: getattr(moment, f) for f in _CSV_FIELDS[1:-2]}}
                row.update(original=moment.path, proxy=proxy or "")
                if proxies and proxy:
                    row["path"] = proxy
                writer.writerow(row)
        return len(moments)
    import opentimelineio as otio

    timeline = _timeline(otio, moments, path.stem, proxies)
    # CMX 3600 counts in one rate: the first clip's (OTIO rescales the others).
    options = {"rate": float(_rate(moments[0][1]))} if adapter == "cmx_3600" and moments else {}
    otio.adapters.write_to_file(timeline, str(path), adapter_name=adapter, **options)
    return len(moments)


def _rate(moment: MomentHit) -> Fraction:
    return Fraction(moment.rate) if moment.rate else _FALLBACK_RATE


def _timeline(otio: Any, moments: list[tuple[FamilyHit, MomentHit]], name: str, proxies: bool) -> Any:
    track = otio.schema.Track(name="footage search", kind=otio.schema.TrackKind.Video)
    for hit, moment in moments:
        rate = float(_rate(moment))
        if moment.start_timecode and moment.end_timecode:
            start = otio.opentime.from_timecode(moment.start_timecode, rate)
            end = otio.opentime.from_timecode(moment.end_timecode, rate)
        else:
            start = otio.opentime.from_seconds(moment.start_s, rate)
            end = otio.opentime.from_seconds(moment.end_s, rate)
        duration = max(end - start, otio.opentime.RationalTime(1, rate))
        source = Path(moment.path)
        clip = otio.schema.Clip(name=source.name, source_range=otio.opentime.TimeRange(start, duration))
        references = {otio.schema.Clip.DEFAULT_MEDIA_KEY: otio.schema.ExternalReference(target_url=source.as_uri())}
        if (proxy := proxy_path(hit, moment)) is not None:
            references[PROXY_KEY] = otio.schema.ExternalReference(target_url=Path(proxy).as_uri())
        active = PROXY_KEY if proxies and PROXY_KEY in references else otio.schema.Clip.DEFAULT_MEDIA_KEY
        clip.set_media_references(references, active)
        clip.metadata["footage"] = {
            "rank": hit.rank,
            "score": round(moment.score, 6),
            "asset_id": moment.asset_id,
            "frame_s": moment.frame_s,
        }
        track.append(clip)
    timeline = otio.schema.Timeline(name=name)
    timeline.tracks.append(track)
    return timeline
