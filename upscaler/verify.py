"""A file's Content Credentials read back and checked, in words: what ``footage verify``,
``show`` and the page say about a version.

The verdict is c2pa's own validation, with footage's words for it: ``valid`` (every
hash and the signature hold; ``trusted`` says whether a configured trust anchor vouches
for the signer), ``tampered`` (a hash no longer matches: the file changed after it was
signed), ``invalid`` (anything else wrong with the manifest or its certificate) or
``none`` (no manifest in the file or beside it).
"""

from __future__ import annotations

import json
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import c2pa

from catalog import NotFoundError
from upscaler.credentials import DIGITAL_SOURCE_TYPE, EMBEDDED, PROVENANCE_LABEL, sidecar_store
from upscaler.identity import SELF_MADE_ORGANIZATION, SELF_MADE_WARNING

# c2pa's failure codes that mean the bytes changed after signing.
_TAMPERED = ("mismatch", "hash")
# A failure that is a verdict on trust, not on the file: reported as ``trusted: false``.
_UNTRUSTED = "signingCredential.untrusted"
# How deep a chain of ingredients' own manifests is told (a master from a camera, itself
# made from another file...).
_DEPTH = 4


@dataclass(frozen=True)
class Verification:
    file: str
    state: str  # valid, tampered, invalid or none
    trusted: bool
    summary: str
    store: str | None  # embedded, sidecar or None
    signer: str | None
    self_made: bool
    chain: tuple[str, ...]  # the manifest chain, one sentence a line
    problems: tuple[str, ...]
    manifest: dict[str, Any] | None  # the active manifest, as c2pa reports it

    @property
    def ok(self) -> bool:
        return self.state == "valid"


def verify_file(path: Path, trust_anchors: bytes | None = None) -> Verification:
    """Read and check ``path``'s Content Credentials (embedded, else its ``.c2pa`` sidecar)."""
    if not path.is_file():
        raise NotFoundError(f"no such file: {path}")
    context = _context(trust_anchors)
    suffix = path.suffix.lower()
    mime = EMBEDDED.get(suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    sidecar = sidecar_store(path)
    with open(path, "rb") as f:
        reader, store = None, None
        if suffix in EMBEDDED:
            try:
                reader, store = c2pa.Reader.try_create(mime, f, None, context), "embedded"
            except c2pa.C2paError as exc:
                return _broken(path, "embedded", f"its manifest cannot be read: {exc}")
        if reader is None and sidecar.is_file():
            f.seek(0)
            try:
                reader, store = c2pa.Reader(mime, f, sidecar.read_bytes(), context=context), "sidecar"
            except c2pa.C2paError as exc:
                return _broken(path, "sidecar", f"its sidecar store {sidecar.name} cannot be read: {exc}")
        if reader is None:
            return _none(path)
        with reader:
            report = json.loads(reader.json())
            verdict = reader.get_validation_state() or "Invalid"
    return _verification(path, store, verdict, report)


def exit_code(verification: Verification) -> int:
    """0 valid (trusted or not), 6 tampered or invalid, 7 none."""
    return {"valid": 0, "none": 7}.get(verification.state, 6)


def _context(trust_anchors: bytes | None) -> c2pa.Context | None:
    if trust_anchors is None:
        return None
    return c2pa.Context(c2pa.Settings.from_dict({"trust": {"trust_anchors": trust_anchors.decode()}}))


def _none(path: Path) -> Verification:
    summary = f"{path.name} carries no Content Credentials (none embedded, no {sidecar_store(path).name} beside it)"
    return Verification(str(path), "none", False, summary, None, None, False, (), (), None)


def _broken(path: Path, store: str, problem: str) -> Verification:
    summary = f"{path.name}: Content Credentials present but unreadable: {problem}"
    return Verification(str(path), "invalid", False, summary, store, None, False, (), (problem,), None)


def _verification(path: Path, store: str | None, verdict: str, report: dict[str, Any]) -> Verification:
    manifests: dict[str, Any] = report.get("manifests", {})
    active = manifests.get(report.get("active_manifest") or "", {})
    failures = report.get("validation_results", {}).get("activeManifest", {}).get("failure", [])
    codes = [str(f.get("code", "")) for f in failures]
    problems = tuple(str(f.get("explanation") or f.get("code")) for f in failures if f.get("code") != _UNTRUSTED)
    trusted = verdict == "Trusted"
    if verdict in ("Trusted", "Valid"):
        state = "valid"
    elif any(word in code.lower() for code in codes for word in _TAMPERED):
        state = "tampered"
    else:
        state = "invalid"
    signature = active.get("signature_info", {})
    self_made = signature.get("issuer") == SELF_MADE_ORGANIZATION
    signer = _signer_words(signature)
    chain = tuple(_manifest_words(active, manifests, trusted, self_made, depth=0))
    summary = _summary(path, state, trusted, self_made, signer, store, problems)
    return Verification(str(path), state, trusted, summary, store, signer, self_made, chain, problems, active)


def _summary(
    path: Path,
    state: str,
    trusted: bool,
    self_made: bool,
    signer: str | None,
    store: str | None,
    problems: tuple[str, ...],
) -> str:
    where = "Content Credentials in a sidecar store" if store == "sidecar" else "embedded Content Credentials"
    if state == "tampered":
        return f"{path.name}: TAMPERED: the file changed after it was signed ({'; '.join(problems)})"
    if state == "invalid":
        return f"{path.name}: INVALID Content Credentials ({'; '.join(problems) or 'c2pa could not validate them'})"
    return f"{path.name}: valid {where}, signed by {signer}; {_trust_words(trusted, self_made)}"


def _trust_words(trusted: bool, self_made: bool) -> str:
    if trusted:
        return "the signer is trusted (its chain ends in a configured trust anchor)"
    if self_made:
        return f"untrusted signer: a footage identity made on its host ({SELF_MADE_WARNING})"
    return "untrusted signer: no configured trust anchor vouches for its certificate"


def _manifest_words(
    manifest: dict[str, Any], manifests: dict[str, Any], trusted: bool | None, self_made: bool, depth: int
) -> list[str]:
    """One sentence a line: who signed, with what, what was done, from what (and that
    ingredient's own manifest, indented)."""
    indent = "  " * depth
    signature = manifest.get("signature_info", {})
    who = _signer_words(signature) or "an unknown signer"
    tools = ", ".join(
        " ".join(str(t[k]) for k in ("name", "version") if t.get(k)) for t in manifest.get("claim_generator_info", [])
    )
    when = f" at {signature['time']}" if signature.get("time") else ""
    lines = [f"{indent}signed by {who} ({signature.get('alg', '?')}){when}"]
    if trusted is not None:
        lines[0] += f"; {_trust_words(trusted, self_made)}"
    if tools:
        lines.append(f"{indent}made with {tools}")
    provenance = _assertion(manifest, PROVENANCE_LABEL)
    if provenance and provenance.get("created_at"):
        lines.append(f"{indent}rendered {provenance['created_at']}")
    actions = _assertion(manifest, "c2pa.actions.v2") or _assertion(manifest, "c2pa.actions") or {}
    lines += [f"{indent}{_action_words(a)}" for a in actions.get("actions", [])]
    for ingredient in manifest.get("ingredients", []):
        lines += _ingredient_words(ingredient, manifests, depth)
    return lines


def _signer_words(signature: dict[str, Any]) -> str | None:
    """c2pa's ``issuer`` is the signing certificate's organisation: said after its common name,
    unless it is footage's self-made marker (said in the trust words instead)."""
    parts = [str(signature[k]) for k in ("common_name", "issuer") if signature.get(k)]
    return ", ".join(p for p in parts if p != SELF_MADE_ORGANIZATION) or None


def _assertion(manifest: dict[str, Any], label: str) -> dict[str, Any] | None:
    for assertion in manifest.get("assertions", []):
        if assertion.get("label") == label:
            data = assertion.get("data")
            return data if isinstance(data, dict) else None
    return None


def _action_words(action: dict[str, Any]) -> str:
    name = str(action.get("action", "?"))
    parameters = action.get("parameters") or {}
    if action.get("digitalSourceType") == DIGITAL_SOURCE_TYPE:
        model = parameters.get("model", "a model")
        sha = parameters.get("model_sha256")
        scale = parameters.get("scale")
        details = [f"weights sha256 {sha}" if sha else "", f"a x{scale} model" if scale else ""]
        if parameters.get("temporal_stage"):
            details.append(f"temporal stage {parameters['temporal_stage']}")
        extra = "; ".join(d for d in details if d)
        return f"{name}: AI-enhanced (algorithmically enhanced) by {model}" + (f" ({extra})" if extra else "")
    if name == "c2pa.opened":
        return f"{name}: opened the ingredient it was made from (below)"
    if name == "c2pa.resized" and parameters.get("from"):
        return f"{name}: resized from {parameters['from']} to {parameters.get('to')}"
    description = action.get("description")
    agent = (action.get("softwareAgent") or {}).get("name") if isinstance(action.get("softwareAgent"), dict) else None
    return name + (f": {description}" if description else "") + (f" (by {agent})" if agent else "")


def _ingredient_words(ingredient: dict[str, Any], manifests: dict[str, Any], depth: int) -> list[str]:
    indent = "  " * depth
    relation = "made from" if ingredient.get("relationship") == "parentOf" else "uses"
    content_hash = (ingredient.get("metadata") or {}).get("org.footage.content_hash")
    line = f"{indent}{relation} {ingredient.get('title', 'an unnamed file')}" + (
        f" ({content_hash})" if content_hash else ""
    )
    own = manifests.get(ingredient.get("active_manifest") or "")
    if own is None:
        return [line + ", which carries no Content Credentials of its own"]
    lines = [line + ", which carries its own Content Credentials:"]
    if depth + 1 >= _DEPTH:
        return [*lines, f"{indent}  (and more, not shown)"]
    return lines + _manifest_words(own, manifests, None, False, depth + 1)
