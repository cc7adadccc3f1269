"""Logging for long-running commands (watch, worker): one line per event on stderr."""

from __future__ import annotations

import logging

from rich.logging import RichHandler

from cli.output import stderr


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(console=stderr(), show_path=False, rich_tracebacks=False)],
        force=True,
    )
    # Libraries' chatter stays out of the service log unless asked for.
    for noisy in ("procrastinate", "watchdog", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
