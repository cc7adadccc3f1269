"""Logging for long-running commands (watch, worker): one line per event on stderr."""

from __future__ import annotations

import logging

from rich.logging import RichHandler

from catalog import FootageError
from catalog.jobs import DATABASE_LOST
from cli.output import stderr

FOOTAGE_LOGGERS = ("catalog", "indexer", "upscaler", "cli")


class _OneLineFailures(logging.Filter):
    """A lost database is an event the service handles, and a FootageError says what went
    wrong in words (a full disk, a master that changed): one line each, no traceback.
    Anything else is a bug and keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, DATABASE_LOST):
            said = f"{record.getMessage().splitlines()[0]} (the catalog database is unreachable)"
        elif isinstance(error, FootageError):
            said = f"{record.getMessage().splitlines()[0]}: {error}"
        else:
            return True
        record.exc_info, record.exc_text = None, None
        record.msg, record.args = said, ()
        return True


def setup_logging(verbose: bool = False) -> None:
    handler = RichHandler(console=stderr(), show_path=False, rich_tracebacks=False)
    if not verbose:
        handler.addFilter(_OneLineFailures())
    # Libraries' INFO chatter (the embedded server's commands, Alembic, open_clip, which
    # logs on the root logger) stays out of the service log unless asked for: the root
    # logs warnings, footage's own packages their events.
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(message)s",
        datefmt="[%X]",
        handlers=[handler],
        force=True,
    )
    for ours in FOOTAGE_LOGGERS:
        logging.getLogger(ours).setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("procrastinate", "watchdog", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
    # The connection pools warn on every failed reconnection while a database
    # restarts; the service says that once, in its own words.
    logging.getLogger("psycopg.pool").setLevel(logging.DEBUG if verbose else logging.ERROR)
