"""The ``footage`` console entry point.

``footage search`` runs in an application holding only that command, whose module
imports nothing heavy at start: when ``footage serve`` answers, a search takes a
fraction of a second instead of the full application's start-up (SQLAlchemy,
Alembic, procrastinate, numpy). Every other command builds the full application.
"""

from __future__ import annotations

import sys

import typer


def _search_only() -> typer.Typer:
    from cli.errors import FootageGroup
    from cli.search import search

    app = typer.Typer(cls=FootageGroup, name="footage", pretty_exceptions_enable=False)
    app.callback()(lambda: None)  # a group, so `footage search ...` parses as in the full application
    app.command()(search)
    return app


def run() -> None:
    """Console-script entry point."""
    if sys.argv[1:2] == ["search"]:
        _search_only()(prog_name="footage")
        return
    from cli.main import app

    app(prog_name="footage")
