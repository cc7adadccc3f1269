"""``footage storage``: the named roots every host mounts at its own path."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from catalog import ConfigurationError, NotFoundError, open_catalog
from catalog.storages import add_storage, env_key, marker_problem, write_map
from cli.errors import FootageGroup
from cli.output import JSON_OPTION, print_json, print_table, stdout
from cli.settings import catalog_settings, footage_home

app = typer.Typer(
    cls=FootageGroup,
    no_args_is_help=True,
    help="Storages: shares (a NAS, the renditions folder) that each host mounts at its own path.",
)

NAME = typer.Argument(help="The storage's name (lower case, e.g. nas, renditions).")
FOLDER = typer.Argument(help="Where this host has the storage (the share's mount point).")


def _folder(path: Path) -> Path:
    folder = path.expanduser().absolute()
    if not folder.is_dir():
        raise NotFoundError(f"no such folder: {folder}")
    return folder


@app.command()
def add(name: Annotated[str, NAME], folder: Annotated[Path, FOLDER]) -> None:
    """Record a new storage rooted at FOLDER, write its identity marker there, and map it on
    this host. Other hosts then map it with `footage storage mount`.

    Example: footage storage add nas /mnt/footage
    """
    folder = _folder(folder)
    with open_catalog(catalog_settings()) as catalog, catalog.session() as session:
        storage = add_storage(session, name, folder)
    write_map(footage_home(), storage.name, folder)
    stdout().print(f"Storage {storage.name} added at {folder}; on other hosts: footage storage mount {name} PATH")


@app.command()
def mount(name: Annotated[str, NAME], folder: Annotated[Path, FOLDER]) -> None:
    """Say where this host has an existing storage. The folder must hold that storage's
    identity marker (written by `footage storage add`): a wrong share is refused.

    Example: footage storage mount nas /Volumes/footage
    """
    folder = _folder(folder)
    with open_catalog(catalog_settings()) as catalog:
        storage = catalog.mounts.by_name(name)
        if storage is None:
            raise NotFoundError(f"no storage {name!r} in the catalog; `footage storage list` shows them")
        if storage.host is not None:
            raise ConfigurationError(
                f"storage {name} is the disk of host {storage.host}; it cannot be mounted elsewhere"
            )
        problem = marker_problem(storage, folder)
        if problem is not None:
            raise ConfigurationError(problem)
    write_map(footage_home(), name, folder)
    stdout().print(f"Storage {name} mounted here at {folder}")


@app.command("list")
def list_storages(as_json: bool = JSON_OPTION) -> None:
    """Show the catalog's storages and where this host has each (checked against its marker).

    Example: footage storage list --json
    """
    with open_catalog(catalog_settings()) as catalog:
        mounts = catalog.mounts.mounts()
        host = catalog.mounts.host
    rows: list[dict[str, Any]] = [
        {
            "name": m.storage.name,
            "host_disk": m.storage.host,
            "folder": str(m.folder) if m.folder is not None else None,
            "served": m.served,
            "problem": m.problem,
            "override": env_key(m.storage.name) if m.storage.host is None else None,
        }
        for m in mounts
    ]
    if as_json:
        print_json({"host": host, "storages": rows})
        return
    print_table(
        f"Storages (this host: {host})",
        ("name", "here at", "served", "why not"),
        [(r["name"], r["folder"] or "-", "yes" if r["served"] else "no", r["problem"] or "-") for r in rows],
    )
