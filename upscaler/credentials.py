"""Content Credentials (C2PA) on renditions: the signed manifest a rendition carries
(``upscaler.verify`` reads one back in words).

The manifest names the master as the parent ingredient (with the master's own manifest
when a camera or another tool signed it, so the chain is kept), the actions (opened,
then AI enhancement with IPTC's ``algorithmicallyEnhanced`` digital source type, then
resized) and footage's provenance as a custom assertion. MP4 and QuickTime files carry
it inside (c2pa's BMFF hash binds it to every byte outside itself); other containers get
a ``.c2pa`` manifest store beside the file, bound to it by a hash of the whole file.
"""

from __future__ import annotations

import copy
import hashlib
import json
import mimetypes
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import c2pa

from upscaler.errors import RenderError
from upscaler.identity import Identity
from upscaler.provenance import now

DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/algorithmicallyEnhanced"
# A custom assertion's label is reverse-domain, owned by who writes it.
PROVENANCE_LABEL = "org.footage.provenance"
# Containers c2pa embeds a manifest into (BMFF); anything else gets a sidecar store.
EMBEDDED = {".mov": "video/quicktime", ".mp4": "video/mp4", ".m4v": "video/x-m4v"}
SIDECAR_SUFFIX = ".c2pa"
_READ_CHUNK = 4 << 20
# Provenance fields that describe this installation rather than the rendition: they stay
# in the catalog and the JSON sidecar, never in a file that is delivered.
_PRIVATE = (("master", "path"), ("software", "host"))


@dataclass(frozen=True)
class Signed:
    """What signing wrote; ``record()`` is what the catalog and the JSON sidecar keep."""

    manifest: str
    store: str  # "embedded" or "sidecar"
    signer: str
    self_made: bool
    algorithm: str
    signed_at: str
    sidecar_bytes: bytes | None = None

    def record(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "sidecar_bytes"} | {"state": "signed"}


def sidecar_store(video: Path) -> Path:
    """Where a file's sidecar manifest store lies: its name with ``.c2pa`` for the extension."""
    return video.with_suffix(SIDECAR_SUFFIX)


def sign_rendition(
    video: Path, title: str, master: Path | None, provenance: dict[str, Any], identity: Identity
) -> Signed:
    """Sign ``video`` (a verified rendition, still under its temporary name) as ``title``.

    Embedded: ``video`` is replaced, atomically, by its signed copy. Sidecar: ``video`` is
    untouched and the store comes back in ``Signed.sidecar_bytes`` for the caller to write
    beside the final file. ``master`` ``None``: the master is gone, and the ingredient is
    described from the provenance alone. The signed result is read back and must validate.
    """
    suffix = Path(title).suffix.lower()
    manifest = _manifest(title, suffix, provenance)
    if suffix not in EMBEDDED:
        manifest["assertions"].append(_data_hash(video))
    # c2pa reports a failed signing callback as an invalid signature; keep the real reason.
    failures: list[Exception] = []

    def sign(data: bytes) -> bytes:
        try:
            return identity.sign(data)
        except Exception as exc:
            failures.append(exc)
            raise

    try:
        with _builder(manifest, master, provenance) as builder:
            algorithm = c2pa.C2paSigningAlg[identity.algorithm.upper()]
            signer = c2pa.Signer.from_callback(sign, algorithm, identity.chain_pem.decode(), None)
            if suffix in EMBEDDED:
                label, sidecar = _sign_embedded(builder, signer, video, EMBEDDED[suffix]), None
            else:
                builder.set_no_embed()
                with open(video, "rb") as source, open(os.devnull, "wb") as nowhere:
                    sidecar = builder.sign(signer, manifest["format"], source, nowhere)
                label = _checked(video, manifest["format"], sidecar)
    except c2pa.C2paError as exc:
        why = failures[0] if failures else exc
        raise RenderError(f"could not sign the Content Credentials of {title}: {why}") from exc
    return Signed(
        label,
        "embedded" if sidecar is None else "sidecar",
        identity.words(),
        identity.self_made,
        identity.algorithm,
        now(),
        sidecar,
    )


def write_sidecar_store(video: Path, store: bytes) -> Path:
    """Write ``video``'s ``.c2pa`` store atomically (temporary name, then rename)."""
    target = sidecar_store(video)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        tmp.write_bytes(store)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _manifest(title: str, suffix: str, provenance: dict[str, Any]) -> dict[str, Any]:
    software = provenance.get("software", {})
    agent = {"name": "footage", "version": software.get("footage") or "unknown"}
    model, output, master = provenance["model"], provenance["output"], provenance["master"]
    temporal = provenance.get("processing", {}).get("temporal", {})
    enhanced = {
        "action": "c2pa.edited",
        "digitalSourceType": DIGITAL_SOURCE_TYPE,
        "softwareAgent": agent,
        "description": (
            f"AI-upscaled by the super-resolution model {model['name']}: detail beyond the master's "
            "resolution was generated by the model, not captured by the camera"
        ),
        "parameters": {
            "model": model["name"],
            "model_sha256": model.get("sha256"),
            "architecture": model.get("architecture"),
            "scale": model.get("scale"),
            "temporal_stage": _temporal_words(temporal),
        },
    }
    resized = {
        "action": "c2pa.resized",
        "softwareAgent": agent,
        "parameters": {
            "from": f"{master.get('width')}x{master.get('height')}",
            "to": f"{output.get('width')}x{output.get('height')}",
        },
    }
    opened = {"action": "c2pa.opened", "parameters": {"ingredientIds": [_master_id(provenance)]}}
    return {
        "claim_generator_info": [agent],
        "title": title,
        "format": EMBEDDED.get(suffix) or mimetypes.guess_type(title)[0] or "application/octet-stream",
        "assertions": [
            {"label": "c2pa.actions.v2", "data": {"actions": [opened, enhanced, resized]}},
            {"label": PROVENANCE_LABEL, "data": _public(provenance)},
        ],
    }


def _temporal_words(temporal: dict[str, Any]) -> str:
    if not temporal or not temporal.get("enabled"):
        return "off (each frame upscaled on its own)"
    return f"on (flow-guided blending, strength {temporal.get('strength')})"


def _public(provenance: dict[str, Any]) -> dict[str, Any]:
    public = copy.deepcopy(provenance)
    public.pop("credentials", None)
    for section, key in _PRIVATE:
        if isinstance(public.get(section), dict) and key in public[section]:
            value = public[section].pop(key)
            if key == "path" and value:
                public[section]["name"] = Path(str(value)).name
    return public


def _master_id(provenance: dict[str, Any]) -> str:
    return f"footage:master:{provenance['master']['content_hash']}"


def _builder(manifest: dict[str, Any], master: Path | None, provenance: dict[str, Any]) -> c2pa.Builder:
    """The manifest's builder with the master as its parent ingredient: read through c2pa
    where c2pa knows the format, so a manifest the master carries comes along; described
    by name and hash where it does not, where the master is gone, or where c2pa cannot
    parse it (a master footage rendered is never refused for its own metadata)."""
    recorded = provenance["master"]
    name = master.name if master is not None else Path(str(recorded.get("path") or "master")).name
    ingredient: dict[str, Any] = {
        "title": name,
        "relationship": "parentOf",
        "instance_id": _master_id(provenance),
        "metadata": {"org.footage.content_hash": recorded["content_hash"]},
    }
    mime = EMBEDDED.get(Path(name).suffix.lower()) or mimetypes.guess_type(name)[0]
    if master is not None and master.is_file() and mime in c2pa.Reader.get_supported_mime_types():
        builder = c2pa.Builder.from_json(manifest)
        try:
            with open(master, "rb") as source:
                builder.add_ingredient(ingredient, mime, source)
            return builder
        except c2pa.C2paError:
            builder.close()
    described = {**ingredient, "format": mime or "application/octet-stream"}
    return c2pa.Builder.from_json({**manifest, "ingredients": [described]})


def _data_hash(video: Path) -> dict[str, Any]:
    """A hash of the whole file, which binds a sidecar store to it (c2pa computes the hash
    itself only for containers it embeds into)."""
    digest = hashlib.sha256()
    with open(video, "rb") as f:
        while chunk := f.read(_READ_CHUNK):
            digest.update(chunk)
    data = {"exclusions": [], "name": "jumbf manifest", "alg": "sha256", "hash": list(digest.digest()), "pad": []}
    return {"label": "c2pa.hash.data", "data": data}


def _sign_embedded(builder: c2pa.Builder, signer: c2pa.Signer, video: Path, mime: str) -> str:
    # Hidden, and for a render's temporary file matched by its stale-partials sweep.
    signed = video.with_name(f".{video.stem.lstrip('.')}.signing{video.suffix}")
    try:
        with open(video, "rb") as source, open(signed, "w+b") as dest:
            builder.sign(signer, mime, source, dest)
        label = _checked(signed, mime, None)
        os.replace(signed, video)
    finally:
        signed.unlink(missing_ok=True)
    return label


def _checked(video: Path, mime: str, store: bytes | None) -> str:
    """The active manifest's label, once the signed file reads back as valid."""
    with open(video, "rb") as f, c2pa.Reader(mime, f, store) as reader:
        state = reader.get_validation_state()
        label = json.loads(reader.json()).get("active_manifest")
    if state not in ("Valid", "Trusted") or not label:
        raise RenderError(f"{video.name}: its Content Credentials did not validate after signing ({state})")
    return str(label)
