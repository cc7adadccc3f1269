"""How commands print: rich tables for people, ``--json`` for programs."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import typer
from rich.console import Console
from rich.table import Table

_CONSOLES_KEY = "footage.consoles"


@dataclass(frozen=True)
class Consoles:
    """Where a command prints: ``out`` for results, ``err`` for progress, logs and errors."""

    out: Console
    err: Console


def consoles() -> Consoles:
    """This invocation's consoles, made when it first prints and kept in its click context.

    Made per invocation rather than at import, so each command (and each
    in-process test run) sees the terminal and streams it was started with.
    """
    ctx = click.get_current_context(silent=True)
    if ctx is None:  # outside a command: a library caller, a bench script
        return Consoles(Console(), Console(stderr=True))
    meta = ctx.find_root().meta
    if _CONSOLES_KEY not in meta:
        meta[_CONSOLES_KEY] = Consoles(Console(), Console(stderr=True))
    found: Consoles = meta[_CONSOLES_KEY]
    return found


def stdout() -> Console:
    return consoles().out


def stderr() -> Console:
    return consoles().err


JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table.")


def _default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def json_text(value: Any) -> str:
    """``value`` as the CLI's JSON: dataclasses as objects, times in ISO 8601, stable key order."""
    return json.dumps(value, default=_default, indent=2, sort_keys=True)


def print_json(value: Any) -> None:
    """Write ``value`` as indented JSON on stdout (plain, no colour)."""
    typer.echo(json_text(value))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def print_table(
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    show_header: bool = True,
) -> None:
    table = Table(title=title, title_justify="left", show_header=show_header)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
    stdout().print(table)


def print_fields(title: str, fields: Mapping[str, Any]) -> None:
    """A two-column table of named facts about one thing."""
    print_table(title, ("", ""), [(name, value) for name, value in fields.items()], show_header=False)
