"""Logging for long-running commands (serve, watch, worker): one line per event on stderr,
as text for people or as JSON objects for a log collector (``--log-format json``)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from enum import StrEnum

import typer
from rich.logging import RichHandler

from catalog import FootageError
from catalog.jobs import DATABASE_LOST
from cli.output import stderr

FOOTAGE_LOGGERS = ("catalog", "indexer", "upscaler", "cli")
# The ids footage's log calls pass as ``extra``, carried into each JSON object.
_IDS = ("asset_id", "rendition_id", "job_id", "path")


class LogFormat(StrEnum):
    text = "text"
    json = "json"


LOG_FORMAT_OPTION = typer.Option("--log-format", help="text for people, json (one object a line) for a log collector.")


class _JsonLines(logging.Formatter):
    """One JSON object a line: time, level, logger, event, and the ids involved."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        entry.update({key: getattr(record, key) for key in _IDS if getattr(record, key, None) is not None})
        job = getattr(record, "job", None)  # procrastinate's own records carry their job
        if isinstance(job, dict) and job.get("id") is not None:
            entry.setdefault("job_id", job["id"])
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


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


def setup_logging(verbose: bool = False, log_format: LogFormat = LogFormat.text) -> None:
    handler: logging.Handler
    if log_format is LogFormat.json:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_JsonLines())
    else:
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
