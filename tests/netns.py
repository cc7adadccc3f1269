"""Network namespaces that play other hosts, on a private test subnet.

A run killed mid-test (its ``finally`` never runs) leaves its namespaces, links and
routes behind. Each name therefore carries the pid of the run that made it, so the next
run removes what a dead run left; and each run takes a /24 that no route here covers,
so whatever is left can never take its traffic (a second route to the same subnet
silently swallows the replies: the test hangs instead of failing).
"""

from __future__ import annotations

import os
import re
import subprocess

PREFIX = "10.213"


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def remove(kind: str, name: str) -> None:
    """``ip KIND del NAME`` (``netns`` or ``link``), whether or not it is still there."""
    subprocess.run(["ip", kind, "del", name], check=False, capture_output=True)


def _ip_out(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process
    return True


def _sweep_leftovers() -> None:
    """Remove the namespaces and host-side links of test runs whose process is gone."""
    namespaces = re.findall(r"^(footage-\S*?(\d+))\b", _ip_out("netns", "list"), re.MULTILINE)
    for name, pid in namespaces:
        if not _alive(int(pid)):
            remove("netns", name)
    links = re.findall(r"^\d+: ((?:fbr|fh)\S*?(\d+))[@:]", _ip_out("-o", "link"), re.MULTILINE)
    for name, pid in links:
        if not _alive(int(pid)):
            remove("link", name)


def free_subnet() -> str:
    """``PREFIX.N`` for a /24 that no route here covers, once what dead runs left is gone."""
    _sweep_leftovers()
    routes = _ip_out("-4", "-o", "route")
    used = set(re.findall(rf"\b{re.escape(PREFIX)}\.(\d+)\.", routes))
    for n in range(1, 255):
        if str(n) not in used:
            return f"{PREFIX}.{n}"
    raise RuntimeError(f"every {PREFIX}.N/24 is routed here already")
