"""Content Credentials (C2PA) on renditions: written by every render, read back through c2pa's
own Reader, checked by `footage verify`, signed by a team's certificate or a local identity,
and added afterwards to renditions made before."""

from __future__ import annotations

import datetime
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import c2pa
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from media import Clip, write_clip
from tiny_models import write_tiny_compact
from typer.testing import CliRunner

from catalog import Asset, Catalog, Rendition, stop_embedded
from catalog.media import content_hash, file_sha256
from cli.main import app
from indexer.embed import ClipEmbedder
from indexer.index import index_file
from upscaler.credentials import DIGITAL_SOURCE_TYPE, PROVENANCE_LABEL

runner = CliRunner()


def _report(path: Path, store: Path | None = None) -> tuple[str, dict[str, Any]]:
    """c2pa's own reading of ``path`` (with a sidecar ``store``): its state and the active manifest."""
    mime = {".mov": "video/quicktime", ".mp4": "video/mp4", ".mkv": "video/x-matroska"}[path.suffix]
    with open(path, "rb") as f, c2pa.Reader(mime, f, store.read_bytes() if store else None) as reader:
        report = json.loads(reader.json())
        state = reader.get_validation_state()
    return state, report


def _active(report: dict[str, Any]) -> dict[str, Any]:
    return report["manifests"][report["active_manifest"]]


def _assertion(manifest: dict[str, Any], label: str) -> dict[str, Any]:
    return next(a["data"] for a in manifest["assertions"] if a["label"] == label)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "FOOTAGE_HOME": str(tmp_path / "home"),
        "FOOTAGE_MODELS_DIR": str(tmp_path / "models"),
        "FOOTAGE_RENDITIONS_DIR": str(tmp_path / "renditions"),
        **extra,
    }


def _render(env: dict[str, str], master: Path, out: Path, model: Path, *more: str) -> dict[str, Any]:
    args = ["render", str(master), "--to", "2x", "-m", str(model), "--codec", "h264", "-o", str(out), *more, "--json"]
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _verify(env: dict[str, str], path: Path) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, ["verify", str(path), "--json"], env=env)
    return result.exit_code, json.loads(result.stdout)


def _subject(common_name: str, organization: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        ]
    )


def _authority(tmp_path: Path, name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, Path]:
    """A team's certificate authority: (certificate, key, its PEM file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _subject(name, name)
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = tmp_path / f"{name.replace(' ', '-')}-root.pem"
    pem.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return certificate, key, pem


def _signing_certificate(
    tmp_path: Path, name: str, authority: tuple[x509.Certificate, ec.EllipticCurvePrivateKey, Path]
) -> tuple[Path, Path]:
    """A signing certificate the authority issued: (its chain's PEM file, its key's PEM file)."""
    ca, ca_key, _ = authority
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    subject = _subject(name, "Harbour Films")
    leaf = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    chain = tmp_path / f"{name.replace(' ', '-')}-chain.pem"
    chain.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, ca)))
    key_file = tmp_path / f"{name.replace(' ', '-')}-key.pem"
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return chain, key_file


@pytest.fixture
def made(tmp_path: Path) -> dict[str, Path]:
    master = write_clip(tmp_path / "harbour.mov", Clip(width=64, height=36, audio=True, shots=(0.5, 0.5)))
    return {"master": master, "model": write_tiny_compact(tmp_path / "tiny-sr.pth")}


def test_a_rendered_file_carries_signed_credentials_that_c2pa_reads_back(made: dict[str, Path], tmp_path: Path) -> None:
    env = _env(tmp_path)
    out = tmp_path / "harbour.2x.mov"
    master_hash = content_hash(made["master"])
    rendered = _render(env, made["master"], out, made["model"])
    state, report = _report(out)
    assert state == "Valid"  # every hash and the signature hold; the self-made signer is not trusted
    codes = [s["code"] for s in report.get("validation_status", [])]
    assert codes == ["signingCredential.untrusted"], codes
    manifest = _active(report)
    [ingredient] = manifest["ingredients"]
    assert ingredient["relationship"] == "parentOf" and ingredient["title"] == "harbour.mov"
    assert ingredient["metadata"]["org.footage.content_hash"] == master_hash
    actions = _assertion(manifest, "c2pa.actions.v2")["actions"]
    assert [a["action"] for a in actions] == ["c2pa.opened", "c2pa.edited", "c2pa.resized"]
    enhanced = actions[1]
    assert enhanced["digitalSourceType"] == DIGITAL_SOURCE_TYPE
    assert enhanced["softwareAgent"]["name"] == "footage"
    assert enhanced["parameters"]["model_sha256"] == file_sha256(made["model"])
    assert enhanced["parameters"]["temporal_stage"].startswith("on")
    provenance = _assertion(manifest, PROVENANCE_LABEL)
    assert provenance["master"]["content_hash"] == master_hash
    # What describes this installation stays out of a delivered file.
    assert str(tmp_path) not in json.dumps(report) and "host" not in provenance["software"]
    assert manifest["signature_info"]["issuer"] == "footage self-made identity"
    # The catalog-free render says so too, and its JSON sidecar records the signing.
    assert rendered["provenance"]["credentials"]["store"] == "embedded"
    assert rendered["provenance"]["credentials"]["self_made"] is True
    sidecar = json.loads(out.with_name(out.name + ".json").read_text())
    assert sidecar["credentials"]["manifest"] == report["active_manifest"]
    # The file still decodes and keeps its own tags.
    import av

    with av.open(str(out)) as container:
        assert container.metadata.get("footage_rendition") == "1"
        assert sum(1 for _ in container.decode(video=0)) == rendered["frames"] > 0
    code, verified = _verify(env, out)
    assert code == 0 and verified["state"] == "valid" and verified["trusted"] is False
    assert "self-made, untrusted outside this installation" in verified["summary"]
    chain = "\n".join(verified["chain"])
    assert "made from harbour.mov" in chain and "AI-enhanced" in chain and file_sha256(made["model"]) in chain


def test_a_changed_byte_reads_as_tampered(made: dict[str, Path], tmp_path: Path) -> None:
    env = _env(tmp_path)
    out = tmp_path / "harbour.2x.mp4"
    _render(env, made["master"], out, made["model"])
    data = bytearray(out.read_bytes())
    mdat = data.index(b"mdat")
    data[mdat + 200] ^= 0x01  # one bit of coded video
    out.write_bytes(bytes(data))
    code, verified = _verify(env, out)
    assert code == 6 and verified["state"] == "tampered", verified["summary"]
    said = runner.invoke(app, ["verify", str(out)], env=env)
    assert said.exit_code == 6 and "TAMPERED" in said.stdout
    # A file that never had credentials says so, with its own exit code.
    code, verified = _verify(env, made["master"])
    assert code == 7 and verified["state"] == "none"


def test_a_signed_master_stays_untouched_and_its_manifest_joins_the_chain(
    made: dict[str, Path], tmp_path: Path
) -> None:
    authority = _authority(tmp_path, "Camera Maker CA")
    chain, key = _signing_certificate(tmp_path, "Camera A7", authority)
    signed_master = tmp_path / "camera.mov"
    camera = {
        "claim_generator_info": [{"name": "camera firmware", "version": "2.1"}],
        "title": "camera.mov",
        "assertions": [
            {
                "label": "c2pa.actions.v2",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture",
                        }
                    ]
                },
            }
        ],
    }
    info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain.read_bytes(), key.read_bytes(), None)
    with (
        c2pa.Builder.from_json(camera) as builder,
        open(made["master"], "rb") as source,
        open(signed_master, "w+b") as dest,
    ):
        builder.sign(c2pa.Signer.from_info(info), "video/quicktime", source, dest)
    before = file_sha256(signed_master)
    out = tmp_path / "camera.2x.mov"
    _render(_env(tmp_path), signed_master, out, made["model"])
    assert file_sha256(signed_master) == before  # the master is only ever read
    state, report = _report(out)
    assert state == "Valid"
    [ingredient] = _active(report)["ingredients"]
    own = report["manifests"][ingredient["active_manifest"]]
    assert own["signature_info"]["common_name"] == "Camera A7"
    assert own["claim_generator_info"][0]["name"] == "camera firmware"
    _, verified = _verify(_env(tmp_path), out)
    chain_words = "\n".join(verified["chain"])
    assert "which carries its own Content Credentials" in chain_words and "Camera A7" in chain_words


def test_a_teams_certificate_signs_and_its_root_makes_it_trusted(made: dict[str, Path], tmp_path: Path) -> None:
    authority = _authority(tmp_path, "Harbour Films Root")
    chain, key = _signing_certificate(tmp_path, "Harbour Films renders", authority)
    env = _env(tmp_path, FOOTAGE_SIGNING_CERT=str(chain), FOOTAGE_SIGNING_KEY=str(key))
    out = tmp_path / "harbour.2x.mov"
    rendered = _render(env, made["master"], out, made["model"])
    assert rendered["provenance"]["credentials"]["self_made"] is False
    _, report = _report(out)
    assert _active(report)["signature_info"]["common_name"] == "Harbour Films renders"
    assert not (tmp_path / "home" / "credentials").exists()  # no local identity was made
    code, untrusted = _verify(env, out)
    assert code == 0 and untrusted["trusted"] is False
    assert "no configured trust anchor vouches" in untrusted["summary"]
    code, trusted = _verify({**env, "FOOTAGE_TRUST_ANCHORS": str(authority[2])}, out)
    assert code == 0 and trusted["state"] == "valid" and trusted["trusted"] is True, trusted["summary"]
    # A key kept elsewhere signs through a command: stdin in, a DER signature out.
    signer = tmp_path / "kms-sign.py"
    signer.write_text(
        "import sys\n"
        "from cryptography.hazmat.primitives import hashes, serialization\n"
        "from cryptography.hazmat.primitives.asymmetric import ec\n"
        f"key = serialization.load_pem_private_key(open({str(key)!r}, 'rb').read(), None)\n"
        "sys.stdout.buffer.write(key.sign(sys.stdin.buffer.read(), ec.ECDSA(hashes.SHA256())))\n"
    )
    command_env = _env(tmp_path, FOOTAGE_SIGNING_CERT=str(chain), FOOTAGE_SIGNING_COMMAND=f"{sys.executable} {signer}")
    by_command = tmp_path / "harbour.by-command.mov"
    _render(command_env, made["master"], by_command, made["model"])
    code, verified = _verify(command_env, by_command)
    assert code == 0 and "Harbour Films renders" in verified["summary"]
    # A key that is not the certificate's is refused before any rendering.
    other_chain, _ = _signing_certificate(tmp_path, "Someone else", authority)
    wrong = _env(tmp_path, FOOTAGE_SIGNING_CERT=str(other_chain), FOOTAGE_SIGNING_KEY=str(key))
    args = ["render", str(made["master"]), "--to", "2x", "-m", str(made["model"]), "-o", str(tmp_path / "no.mov")]
    refused = runner.invoke(app, args, env=wrong)
    assert refused.exit_code == 2 and "is not the key of the first certificate" in refused.output
    assert not (tmp_path / "no.mov").exists()


def test_the_local_identity_is_made_once_and_its_key_kept_private(made: dict[str, Path], tmp_path: Path) -> None:
    env = _env(tmp_path)
    try:
        shown = runner.invoke(app, ["credentials", "--json"], env={**env, "FOOTAGE_DATABASE_URL": ""})
    finally:
        stop_embedded(tmp_path / "home" / "pgdata")  # the catalog server that command started
    home = tmp_path / "home" / "credentials"
    key = home / "signing-key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and stat.S_IMODE(home.stat().st_mode) == 0o700
    first = key.read_bytes()
    out = tmp_path / "harbour.2x.mov"
    rendered = _render(env, made["master"], out, made["model"])
    assert key.read_bytes() == first  # made once, then used
    assert shown.exit_code == 0, shown.output
    facts = json.loads(shown.stdout)
    assert facts["self_made"] is True and "PRIVATE KEY" not in shown.stdout
    assert "PRIVATE KEY" not in json.dumps(rendered)


def test_a_matroska_output_gets_a_sidecar_store_that_verifies(made: dict[str, Path], tmp_path: Path) -> None:
    env = _env(tmp_path)
    out = tmp_path / "harbour.2x.mkv"
    rendered = _render(env, made["master"], out, made["model"])
    store = tmp_path / "harbour.2x.c2pa"
    assert rendered["provenance"]["credentials"]["store"] == "sidecar" and store.is_file()
    state, report = _report(out, store)
    assert state == "Valid" and _active(report)["ingredients"][0]["title"] == "harbour.mov"
    code, verified = _verify(env, out)
    assert code == 0 and verified["store"] == "sidecar"
    with open(out, "r+b") as f:  # a byte changed at the end of the file
        f.seek(-10, os.SEEK_END)
        last = f.read(1)
        f.seek(-10, os.SEEK_END)
        f.write(bytes([last[0] ^ 0xFF]))
    code, verified = _verify(env, out)
    assert code == 6 and verified["state"] == "tampered"


def test_renditions_made_before_signing_are_signed_afterwards(
    catalog: Catalog, embedder: ClipEmbedder, made: dict[str, Path], tmp_path: Path
) -> None:
    from catalog.jobs import job_app
    from indexer.index import IndexOptions
    from upscaler.jobs import UpscaleRequest, UpscaleSettings, request_upscale, run_render_job
    from upscaler.registry import ModelChoice

    env = {**_env(tmp_path), "FOOTAGE_DATABASE_URL": catalog.engine.url.render_as_string(hide_password=False)}
    index_file(catalog, embedder, made["master"])
    # A footage that did not sign: the same request and render, without a signer.
    unsigned = UpscaleSettings(renditions_dir=tmp_path / "renditions", models_dir=tmp_path / "models")
    request = UpscaleRequest(str(made["master"]), "2x", ModelChoice(str(made["model"])), codec="h264")
    with job_app(catalog, asynchronous=False).open() as defer_app:
        requested = request_upscale(catalog, defer_app, request, unsigned)
    output = run_render_job(catalog, None, unsigned, requested.rendition_id)
    assert output is not None
    index_file(catalog, embedder, output, IndexOptions(kind="rendition"))
    old_hash = content_hash(output)
    assert _verify(env, output)[1]["state"] == "none"
    listed = json.loads(runner.invoke(app, ["pairs", "--json"], env=env).stdout)
    assert listed["pairs"][0]["renditions"][0]["rendition"]["credentials"] == "unsigned"

    result = runner.invoke(app, ["credentials", "--missing", "--json"], env=env)
    assert result.exit_code == 0, result.output
    [signed] = json.loads(result.stdout)["renditions"]
    assert signed["outcome"] == "signed" and signed["path"] == str(output)
    code, verified = _verify(env, output)
    assert code == 0 and verified["state"] == "valid"
    with catalog.session() as session:
        rendition = session.get(Rendition, requested.rendition_id)
        assert rendition is not None
        asset = session.get(Asset, rendition.rendition_asset_id)
        assert asset is not None and asset.content_hash == content_hash(output) != old_hash
        assert rendition.provenance["credentials"]["unsigned_content_hash"] == old_hash
    sidecar = json.loads(output.with_name(output.name + ".json").read_text())
    assert sidecar["credentials"]["unsigned_content_hash"] == old_hash
    # The catalog knows the file as it is now: indexing it again finds nothing changed.
    assert index_file(catalog, embedder, output, IndexOptions(kind="rendition")).outcome == "unchanged"
    again = runner.invoke(app, ["credentials", "--missing", "--json"], env=env)
    assert again.exit_code == 0 and json.loads(again.stdout)["renditions"] == []
    listed = json.loads(runner.invoke(app, ["pairs", "--json"], env=env).stdout)
    assert listed["pairs"][0]["renditions"][0]["rendition"]["credentials"] == "signed (self-made)"


def test_a_queued_rendition_is_signed_and_the_catalog_says_so(
    catalog: Catalog, embedder: ClipEmbedder, tiny_clip: str, made: dict[str, Path], tmp_path: Path
) -> None:
    url = catalog.engine.url.render_as_string(hide_password=False)
    env = {**_env(tmp_path), "FOOTAGE_DATABASE_URL": url, "FOOTAGE_CLIP_MODEL": tiny_clip}
    index_file(catalog, embedder, made["master"])
    args = ["upscale", str(made["master"]), "--to", "2x", "-m", str(made["model"]), "--wait", "--json"]
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    output = Path(json.loads(result.stdout)["output"])
    state, report = _report(output)
    assert state == "Valid"
    enhanced = _assertion(_active(report), "c2pa.actions.v2")["actions"][1]
    assert enhanced["digitalSourceType"] == DIGITAL_SOURCE_TYPE
    assert enhanced["parameters"]["model_sha256"] == file_sha256(made["model"])
    assert _active(report)["ingredients"][0]["metadata"]["org.footage.content_hash"] == content_hash(made["master"])
    shown = json.loads(runner.invoke(app, ["show", str(made["master"]), "--json"], env=env).stdout)
    [version] = shown["renditions"]
    assert version["rendition"]["credentials"] == "signed (self-made)"
    assert version["rendition"]["provenance"]["credentials"]["manifest"] == report["active_manifest"]
    with catalog.session() as session:
        asset = session.get(Asset, version["asset_id"])
        assert asset is not None and asset.content_hash == content_hash(output)  # the signed file's hash
    table = runner.invoke(app, ["show", str(made["master"])], env=env, terminal_width=200)
    assert "signed (self-made)" in table.stdout
