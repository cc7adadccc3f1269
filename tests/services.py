"""Running footage's long-lived commands (watch, worker) as real processes in tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from catalog import Catalog


def catalog_env(catalog: Catalog | None, home: Path, **extra: str) -> dict[str, str]:
    """The environment of a footage process on ``catalog`` (``None``: the embedded one in ``home``)."""
    env = {k: v for k, v in os.environ.items() if k != "FOOTAGE_DATABASE_URL"}
    env["FOOTAGE_HOME"] = str(home)
    if catalog is not None:
        env["FOOTAGE_DATABASE_URL"] = catalog.engine.url.render_as_string(hide_password=False)
    env.update(extra)
    return env


@dataclass
class Service:
    """A running ``footage`` process. Its output goes to files, not pipes: a pipe nobody
    reads fills up and blocks the process at its next log line."""

    process: subprocess.Popen[str]
    out: Path
    err: Path

    def stop(self) -> tuple[int, str, str]:
        """SIGTERM, then (exit code, stdout, stderr)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=60)
        return code, self.out.read_text(), self.err.read_text()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)


def start(env: dict[str, str], logs: Path, *args: str) -> Service:
    """``footage ARGS...`` in a process of its own, logging into files under ``logs``."""
    logs.mkdir(parents=True, exist_ok=True)
    runs = len(list(logs.glob("*.out")))
    out, err = logs / f"{runs}.out", logs / f"{runs}.err"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", *args], env=env, stdout=stdout, stderr=stderr, text=True
        )
    return Service(process, out, err)
