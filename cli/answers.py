"""How the service answers over HTTP: JSON, the CLI's own, and errors with their exit code."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from catalog import FootageError, NotFoundError
from cli.output import json_text


def answer(value: Any, status: int = 200) -> Response:
    return Response(json_text(value), status_code=status, media_type="application/json")


def error_answer(exc: FootageError) -> Response:
    status = 404 if isinstance(exc, NotFoundError) else 400
    return answer({"error": str(exc), "exit_code": exc.exit_code}, status)
