"""``footage db``: the catalog database."""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from catalog import (
    ConfigurationError,
    DatabaseStatus,
    database_status,
    open_catalog,
    schema,
    stop_embedded,
)
from cli.errors import FootageGroup
from cli.output import JSON_OPTION, file_size, print_fields, print_json, print_table, stdout
from cli.settings import catalog_settings

if TYPE_CHECKING:
    from catalog.embedded import OldData

app = typer.Typer(
    cls=FootageGroup,
    no_args_is_help=True,
    help="Inspect, migrate and serve the catalog database.",
)


def _status_json(status: DatabaseStatus) -> dict[str, Any]:
    return {**dataclasses.asdict(status), "up_to_date": status.up_to_date}


def _old_data_said(old: OldData) -> str:
    made_by = f"PostgreSQL {old.made_by}'s " if old.made_by else ""
    return (
        f"{old.path} ({file_size(old.size_bytes)}): {made_by}catalog from before the upgrade, kept; "
        "remove it once this one works (the next upgrade needs it gone)"
    )


@app.command()
def status(as_json: bool = JSON_OPTION) -> None:
    """Show the server, pgvector and schema versions, and how many rows each table holds.

    With no FOOTAGE_DATABASE_URL this starts (or reuses) the embedded server.

    Example: footage db status --json
    """
    with open_catalog(catalog_settings(), require_current=False) as catalog:
        result = database_status(catalog)
    if as_json:
        print_json(_status_json(result))
        return
    if result.embedded:
        server = f"embedded, pid {result.embedded_pid} ({'started' if result.embedded_started else 'reused'})"
    else:
        server = "configured by FOOTAGE_DATABASE_URL"
    print_fields(
        "Catalog",
        {
            "database": result.url,
            "server": server,
            "PostgreSQL": result.server_version,
            "pgvector": result.pgvector_version or "not installed",
            "vectors": result.vector_storage or "-",
            "schema": f"{result.revision or 'empty'}"
            + ("" if result.up_to_date else f" (needs {result.head_revision}: footage db upgrade)"),
            **{f"lacks ({i + 1})": lack for i, lack in enumerate(result.lacks)},
            **({"old data": _old_data_said(result.old_data)} if result.old_data else {}),
        },
    )
    print_table(
        None,
        ("table", "rows"),
        [(name, "not created" if n is None else n) for name, n in result.row_counts.items()],
    )
    if result.roots:
        print_table(
            "Watched folders",
            ("folder", "state", "last scan"),
            [
                (
                    r["path"],
                    "online" if r["online"] else f"offline since {r['offline_since']}",
                    r["last_scan_at"] or "never",
                )
                for r in result.roots
            ],
        )


@app.command()
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Migrate the catalog schema forward (to the newest revision by default).

    Example: FOOTAGE_DATABASE_URL=postgresql+psycopg://me@db/footage footage db upgrade
    """
    with open_catalog(catalog_settings(), require_current=False) as catalog:
        before = schema.current_revision(catalog.engine)
        schema.upgrade(catalog.engine, revision)
        after = schema.current_revision(catalog.engine)
    if before == after:
        stdout().print(f"Catalog schema already at {after}.")
    else:
        stdout().print(f"Catalog schema upgraded from {before or 'empty'} to {after}.")


@app.command()
def downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision; 'base' removes every table.")],
    yes: Annotated[bool, typer.Option("--yes", help="Confirm that data in dropped tables is lost.")] = False,
    for_older_footage: Annotated[
        bool,
        typer.Option(
            "--for-older-footage",
            help="Downgrade the embedded catalog for an older footage release (this one upgrades it again).",
        ),
    ] = False,
) -> None:
    """Migrate the catalog schema back. Tables a revision created are dropped with their rows.

    Every footage command brings the embedded catalog to its newest schema, so
    downgrading it is only for handing it to an older footage release
    (--for-older-footage); it cannot be emptied this way (see `footage db stop`).

    Example: FOOTAGE_DATABASE_URL=postgresql+psycopg://me@db/footage footage db downgrade 0003 --yes
    """
    settings = catalog_settings()
    embedded = settings.database_url is None
    if embedded and revision == "base":
        raise ConfigurationError(
            f"that would delete every asset, moment and rendition of the embedded catalog; to start afresh, "
            f"run `footage db stop` and move {settings.pgdata} away (which keeps it, should you want it back)"
        )
    if embedded and not for_older_footage:
        raise ConfigurationError(
            "every footage command brings the embedded catalog back to the newest schema, so this downgrade "
            "would be undone by the next one; to hand the catalog to an older footage release, add "
            "--for-older-footage and use only that release afterwards"
        )
    if not yes:
        raise ConfigurationError("downgrading drops catalog tables and their rows; add --yes to confirm")
    with open_catalog(settings, require_current=False) as catalog:
        schema.downgrade(catalog.engine, revision)
        after = schema.current_revision(catalog.engine)
    stdout().print(f"Catalog schema now at {after or 'empty'}.")
    if embedded:
        stdout().print(
            f"Run the older footage now: the next command of this one ({schema.head_revision()}) upgrades it again."
        )


@app.command()
def stop() -> None:
    """Stop the embedded PostgreSQL server (the next command starts it again)."""
    settings = catalog_settings()
    if settings.database_url is not None:
        raise ConfigurationError("FOOTAGE_DATABASE_URL is set: footage does not run that server")
    if stop_embedded(settings.pgdata):
        stdout().print(f"Stopped the embedded server in {settings.pgdata}.")
    else:
        stdout().print("The embedded server was not running.")


@app.command()
def server(
    folder: Annotated[Path, typer.Argument(help="The catalog's data directory (made on the first start).")],
    listen: Annotated[
        list[str] | None,
        typer.Option("--listen", help="Address to listen on (repeatable; default 127.0.0.1; 0.0.0.0 for every one)."),
    ] = None,
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 5432,
    allow: Annotated[
        list[str] | None,
        typer.Option(
            "--allow",
            help="Address or network (CIDR) allowed to connect (repeatable; needed unless listening on loopback only).",
        ),
    ] = None,
) -> None:
    """Run the catalog as a network server for a team, in the foreground (for a service manager).

    The same PostgreSQL 18 + pgvector the embedded default runs; other hosts
    connect as the role footage with a password (SCRAM), only from the
    addresses allowed. Prints the FOOTAGE_DATABASE_URL line the other hosts
    use (the password is kept in DIR.footage-password, readable by its owner
    only). Stop with Ctrl-C or SIGTERM: PostgreSQL shuts down cleanly.

    Example: footage db server /srv/footage-catalog --listen 10.0.0.5 --allow 10.0.0.0/24
    """
    from catalog.db_server import ServerSettings, run_server

    addresses = tuple(listen or ["127.0.0.1"])
    if allow is None and not all(_loopback(a) for a in addresses):
        raise ConfigurationError(
            f"--listen {addresses[0]} needs --allow: the addresses or networks of the hosts that may connect "
            "(e.g. --allow 10.0.0.0/24)"
        )
    settings = ServerSettings(
        pgdata=folder.expanduser().absolute(),
        listen=addresses,
        port=port,
        allow=tuple(allow or ["127.0.0.1/32", "::1/128"]),
    )

    def ready(url: str) -> None:
        # Plain print: a service manager's log and a shell's `eval` read this line as it is.
        print(f"FOOTAGE_DATABASE_URL={url}", flush=True)
        stdout().print(f"Catalog server ready in {settings.pgdata} (Ctrl-C to stop)")

    code = run_server(settings, ready)
    stdout().print("Stopped.")
    if code:
        raise typer.Exit(code)


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"
