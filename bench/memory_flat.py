"""Peak memory against video length: indexing and rendering must stream.

Runs each job in a fresh process on a short and a four-times-longer clip and
prints the peak resident memory of both; flat means the bounded queues and
streaming decode hold, whatever the length.

    python bench/memory_flat.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import hardware, write_footage  # noqa: E402

_INDEX = """
import sys, warnings, json
from pathlib import Path
sys.path.insert(0, {root!r})
from bench.common import scratch_catalog
from indexer.embed import ClipEmbedder
from indexer.settings import EmbeddingSettings
from indexer.index import index_file
with scratch_catalog() as catalog:
    r = index_file(catalog, ClipEmbedder(EmbeddingSettings(model="ViT-B-32", pretrained=None)), Path({video!r}))
    import resource
    print(json.dumps({{"outcome": r.outcome, "segments": r.segments,
                      "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}))
"""

_RENDER = """
import sys, json, torch
from pathlib import Path
sys.path.insert(0, {root!r})
from spandrel.architectures.Compact import Compact
from upscaler.registry import ModelChoice
from upscaler.render import RenderRequest, render
weights = Path({folder!r}) / "x4v3.pth"
torch.save({{"params": Compact(num_feat=64, num_conv=32, upscale=4).state_dict()}}, weights)
r = render(RenderRequest(master=Path({video!r}), output=Path({folder!r}) / "out-{tag}.mov", target="2x",
                         model=ModelChoice(str(weights)), cache_dir=Path({folder!r})))
import resource
print(json.dumps({{"frames": r.frames, "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}))
"""


def _run(code: str) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter; it reports its own peak RSS (KiB) as JSON."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    root = str(Path(__file__).resolve().parent.parent)
    print(f"hardware: {hardware()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for job, template, size in (("index", _INDEX, (1920, 1080)), ("render", _RENDER, (320, 180))):
            for factor in (1, 4):
                seconds = args.seconds * factor
                video = write_footage(folder / f"{job}-{factor}.mp4", *size, seconds)
                code = template.format(root=root, video=str(video), folder=tmp, tag=f"{factor}")
                result = _run(code)
                peak = int(result.pop("peak_kb")) / 1024  # type: ignore[call-overload]
                print(f"{job} {size[0]}x{size[1]} {seconds:.0f} s: peak RSS {peak:.0f} MB {result}", flush=True)


if __name__ == "__main__":
    main()
