"""The ``footage`` application: every command hangs off this Typer app."""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from cli import credentials, db, indexing, notes, proxies, renditions, search, service, storage, upscaling
from cli.errors import FootageGroup

EXIT_CODES = """Exit codes: 0 success, 1 failed, 2 bad usage or setting, 3 database
unreachable, 4 schema out of date, 5 not found, 6 credentials tampered or invalid,
7 no credentials (footage verify)."""

app = typer.Typer(
    cls=FootageGroup,
    name="footage",
    no_args_is_help=True,
    help="Find footage by what it shows, and make AI-upscaled renditions of it.",
    epilog=EXIT_CODES,
    pretty_exceptions_enable=False,
)
app.add_typer(db.app, name="db")
app.add_typer(storage.app, name="storage")
app.command()(indexing.index)
app.command()(indexing.reindex)
app.command()(service.watch)
app.command()(service.worker)
app.command()(service.serve)
app.command()(search.search)
app.command()(search.show)
app.command()(notes.note)
app.command()(notes.tag)
app.command()(notes.untag)
app.command()(notes.select)
app.command()(notes.selections)
app.command()(notes.selection)
app.command()(upscaling.render)
app.command()(upscaling.preview)
app.command()(upscaling.models)
app.command()(renditions.upscale)
app.command()(renditions.pairs)
app.command()(renditions.link)
app.command()(proxies.proxy)
app.command()(credentials.verify)
app.command()(credentials.credentials)
app.add_typer(renditions.jobs, name="jobs")


def _version() -> str:
    try:
        return version("footage")
    except PackageNotFoundError:
        return "unknown"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"footage {_version()}")
        raise typer.Exit()


@app.callback()
def main(
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Find footage by what it shows, and make AI-upscaled renditions of it.

    The catalog lives in PostgreSQL: FOOTAGE_DATABASE_URL names a server, or,
    unset, footage runs an embedded one in FOOTAGE_HOME.
    """
    # SVT-AV1 prints a banner to stderr on every encoder open unless told to log
    # errors only, and reads that only from the environment: set here, when a
    # command runs, not when the module is imported.
    os.environ.setdefault("SVT_LOG", "1")
