"""Wall time of ``footage search "TEXT"`` from a fresh shell, without and with ``footage serve``.

A scratch embedded catalog with one indexed clip, searched with a ViT-B-32 of
random weights saved as a checkpoint file (the real model's size and load path;
the weights cannot be downloaded here, and their values do not change the cost).

    python bench/cli_latency.py [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import hardware, write_footage  # noqa: E402

FOOTAGE = [sys.executable, "-m", "cli"]


def _timed(env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(
        [*FOOTAGE, "search", "a red circle", "--json"], env=env, capture_output=True, text=True, check=True
    )
    return time.perf_counter() - start, json.loads(done.stdout)["answered_by"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import open_clip
    import torch

    with tempfile.TemporaryDirectory(prefix="footage-cli-bench-") as tmp:
        weights = Path(tmp) / "vit-b-32-random.pt"
        torch.save(open_clip.create_model("ViT-B-32").state_dict(), weights)
        env = {
            **os.environ,
            "FOOTAGE_HOME": str(Path(tmp) / "home"),
            "FOOTAGE_CLIP_MODEL": "ViT-B-32",
            "FOOTAGE_CLIP_PRETRAINED": str(weights),
        }
        env.pop("FOOTAGE_DATABASE_URL", None)
        clip = write_footage(Path(tmp) / "clip.mp4", 320, 180, 4.0)
        subprocess.run([*FOOTAGE, "index", str(clip)], env=env, capture_output=True, check=True)
        _timed(env)  # the embedded server is up and the files are in the page cache from here on
        alone = [_timed(env) for _ in range(args.runs)]
        port = _port()
        server = subprocess.Popen(
            [*FOOTAGE, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            for _ in range(600):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            served = [_timed(env) for _ in range(args.runs)]
        finally:
            server.terminate()
            server.wait(timeout=60)
            subprocess.run([*FOOTAGE, "db", "stop"], env=env, capture_output=True)
    result = {
        "hardware": hardware(),
        "runs": args.runs,
        "without_service_median_s": round(statistics.median(t for t, _ in alone), 3),
        "with_service_median_s": round(statistics.median(t for t, _ in served), 3),
        "answered_by": sorted({by for _, by in alone + served}),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print("  ".join(f"{k}={v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
