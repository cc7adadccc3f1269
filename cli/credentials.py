"""``footage verify`` and ``footage credentials``: Content Credentials read back, the signing
identity, and signing the renditions made before footage signed them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.output import JSON_OPTION, print_fields, print_json, print_table, stderr, stdout
from cli.progress import file_progress
from cli.settings import catalog_settings, signing_settings
from upscaler.identity import load_identity, trust_anchors
from upscaler.verify import exit_code, verify_file


def verify(
    file: Annotated[Path, typer.Argument(help="A video file (a rendition, or anything carrying C2PA credentials).")],
    as_json: bool = JSON_OPTION,
) -> None:
    """Check a file's Content Credentials (C2PA) and say what they claim, in words.

    States: valid (the signature and every hash hold; the signer trusted or not),
    tampered (the file changed after signing), invalid, or none. Signers are
    trusted when FOOTAGE_TRUST_ANCHORS (PEM roots) vouches for them.

    Exit codes: 0 valid, 6 tampered or invalid, 7 no credentials.

    Example: footage verify renditions/A001_C002.4k.realesr-general-x4v3.hevc.mov
    """
    result = verify_file(file.absolute(), trust_anchors(signing_settings()))
    if as_json:
        print_json(result)
    else:
        style = "green" if result.ok else "bold red"
        stdout().print(result.summary, style=style, markup=False, highlight=False, soft_wrap=True)
        for line in result.chain:
            stdout().print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
    code = exit_code(result)
    if code:
        raise typer.Exit(code)


def credentials(
    missing: Annotated[
        bool,
        typer.Option("--missing", help="Sign every rendition footage made before it signed renditions."),
    ] = False,
    as_json: bool = JSON_OPTION,
) -> None:
    """Show who signs this host's renditions, or sign the renditions made before signing.

    Every rendition footage writes carries C2PA Content Credentials, signed by
    FOOTAGE_SIGNING_CERT (a PEM chain, signing certificate first) with
    FOOTAGE_SIGNING_KEY (a PEM key) or FOOTAGE_SIGNING_COMMAND (a command that
    signs stdin to stdout, for keys in a KMS or HSM). Without them, a local
    identity made on first use in FOOTAGE_HOME/credentials signs: self-made, and
    untrusted outside this installation.

    Example: footage credentials --missing
    """
    from catalog import open_catalog
    from upscaler.backfill import sign_missing, unsigned_count

    settings = signing_settings()
    identity = load_identity(settings)
    with open_catalog(catalog_settings()) as catalog:
        if not missing:
            facts = {
                "signer": identity.subject,
                "issuer": identity.issuer,
                "algorithm": identity.algorithm,
                "self_made": identity.self_made,
                "certificate_chain": str(settings.cert_chain or settings.home / "signing-chain.pem"),
                "unsigned_renditions": unsigned_count(catalog),
            }
            if as_json:
                print_json(facts)
                return
            print_fields("Content Credentials: who signs renditions on this host", facts)
            if identity.self_made:
                stderr().print(
                    "This identity was made on this host: validators call it untrusted outside this installation. "
                    "A team names its own certificate with FOOTAGE_SIGNING_CERT and FOOTAGE_SIGNING_KEY.",
                    markup=False,
                    highlight=False,
                )
            return
        with file_progress() as progress:
            task = progress.add_task("Signing renditions", total=unsigned_count(catalog))
            done = sign_missing(catalog, settings, lambda _: progress.advance(task))
    if as_json:
        print_json({"renditions": done})
        return
    print_table(
        f"Signed {sum(d.outcome == 'signed' for d in done)} of {len(done)} unsigned renditions",
        ("rendition", "file", "outcome", "seconds"),
        [(d.rendition_id, d.path, d.reason or d.outcome, f"{d.seconds:.2f}") for d in done],
    )
    if any(d.outcome != "signed" for d in done):
        raise typer.Exit(1)
