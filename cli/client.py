"""Finding and asking a running ``footage serve`` (stdlib HTTP only: a client must start light).

The service is found through ``FOOTAGE_SERVER_URL``, or the announcement a running
service leaves in ``FOOTAGE_HOME/server.json``. When none answers, callers do the
work in-process; a service that answers with an error is believed (the same
error would come in-process).
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from catalog import FootageError, NotFoundError

logger = logging.getLogger(__name__)

ANNOUNCE_FILE = "server.json"  # written by cli/server.py
DEFAULT_PORT = 8765
# A service that is up answers a search in milliseconds; one that is not answers
# "connection refused" at once. Longer than this is a service in trouble: work in-process.
_TIMEOUT_S = 10.0


class ServiceError(FootageError):
    """The service answered, with an error the CLI reports as its own."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def service_url(home: Path) -> str | None:
    """The URL of the service to ask, or None when none is configured or announced."""
    configured = os.environ.get("FOOTAGE_SERVER_URL")
    if configured:
        return configured.rstrip("/")
    try:
        announced = json.loads((home / ANNOUNCE_FILE).read_text())
        os.kill(int(announced["pid"]), 0)  # a service that died leaves its file behind
        return str(announced["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def ask(url: str, path: str, params: dict[str, str] | None = None) -> dict[str, Any] | None:
    """GET ``path`` from the service: its JSON answer, or None when it cannot be reached
    or does not take this request (then do the work in-process)."""
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    request = urllib.request.Request(f"{url}{path}{query}")
    token = os.environ.get("FOOTAGE_SERVER_TOKEN")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read())
        except ValueError:
            body = {}
        if exc.code == 404 and "error" in body:
            raise NotFoundError(body["error"]) from None
        if exc.code == 400 and "error" in body:
            raise ServiceError(body["error"], int(body.get("exit_code", 2))) from None
        logger.debug("the service at %s said %s: working in-process", url, exc.code)
        return None
    except (OSError, ValueError) as exc:  # refused, timed out, not JSON
        logger.debug("the service at %s did not answer (%s): working in-process", url, exc)
        return None
