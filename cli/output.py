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
from rich.text import Text

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
        return _make_consoles()
    meta = ctx.find_root().meta
    if _CONSOLES_KEY not in meta:
        meta[_CONSOLES_KEY] = _make_consoles()
    found: Consoles = meta[_CONSOLES_KEY]
    return found


# Output that goes to a file or a pipe is not wrapped at all: a row stays one line
# that grep and cut can use, however long its path.
_PIPED_WIDTH = 10_000


def _make_consoles() -> Consoles:
    """Consoles that print text as it is: file names such as ``clip [v2].mov`` are names,
    not markup (styles come as ``rich.text.Text``)."""
    out = Console(markup=False)
    if not out.is_terminal:
        out.width = _PIPED_WIDTH
    return Consoles(out, Console(stderr=True, markup=False))


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


def file_size(size_bytes: int | None) -> str:
    if not size_bytes:
        return "-"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if size_bytes >= scale:
            return f"{size_bytes / scale:.1f} {unit}"
    return f"{size_bytes} B"


def _cell(value: Any) -> str | Text:
    if isinstance(value, Text):
        return value
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def table(title: str | None = None, **options: Any) -> Table:
    """A table whose cells fold rather than end in "…": a path is never cut short."""
    return Table(title=title, title_justify="left", **options)


def add_columns(to: Table, columns: Sequence[str]) -> None:
    for column in columns:
        to.add_column(column, overflow="fold")


def print_table(
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    show_header: bool = True,
) -> None:
    made = table(title, show_header=show_header)
    add_columns(made, columns)
    for row in rows:
        made.add_row(*(_cell(v) for v in row))
    stdout().print(made)


def print_fields(title: str, fields: Mapping[str, Any]) -> None:
    """A two-column table of named facts about one thing."""
    print_table(title, ("", ""), [(name, value) for name, value in fields.items()], show_header=False)
