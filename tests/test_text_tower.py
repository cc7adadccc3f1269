"""The exported CLIP text tower: the same tokens and embeddings as the full model, loaded
without torch, open_clip or torchvision, found again only for the same weights."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from media import Clip, write_clip
from tiny_models import write_tiny_clip
from typer.testing import CliRunner

from catalog import Catalog
from cli.main import app
from indexer import text_tower
from indexer.embed import ClipEmbedder
from indexer.settings import EmbeddingSettings

QUERIES = ["a red circle", "two people talking in a kitchen", "Ünïcödé!", "don't &amp; 東京 " + "long " * 90]


def test_the_exported_tower_embeds_as_the_model_does(tmp_path: Path) -> None:
    settings = EmbeddingSettings(model=write_tiny_clip(tmp_path / "clip", seed=3), device="cpu")  # as the CLI loads it
    cache = tmp_path / "towers"
    assert text_tower.load(settings, cache) is None  # nothing exported yet
    full = ClipEmbedder(settings, text_only=True)
    exported = text_tower.export(full, cache)
    assert exported is not None and (exported / "text.onnx").is_file()
    tower = text_tower.load(settings, cache)
    assert tower is not None and tower.identity == full.identity
    np.testing.assert_array_equal(tower.tokens(QUERIES), full.tokenizer(QUERIES).numpy())
    np.testing.assert_allclose(tower.embed_text(QUERIES), full.embed_text(QUERIES), atol=1e-5)

    # New weights under the same name (a retrained local model) are not served by the old export.
    weights = Path(settings.model.removeprefix("local-dir:")) / "open_clip_pytorch_model.bin"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert text_tower.load(settings, cache) is None


def test_the_tower_loads_without_torch(tmp_path: Path) -> None:
    settings = EmbeddingSettings(model=write_tiny_clip(tmp_path / "clip"), device="cpu")
    cache = tmp_path / "towers"
    full = ClipEmbedder(settings, text_only=True)
    assert text_tower.export(full, cache) is not None
    expected = full.embed_text(QUERIES)
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from indexer import text_tower\n"
        "from indexer.settings import EmbeddingSettings\n"
        f"tower = text_tower.load(EmbeddingSettings(model={settings.model!r}), Path({str(cache)!r}))\n"
        f"vectors = tower.embed_text({QUERIES!r})\n"
        "print(json.dumps({'vectors': vectors.tolist(), 'modules': sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('torch', 'open_clip', 'torchvision'))}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    answer = json.loads(done.stdout)
    assert answer["modules"] == []
    np.testing.assert_allclose(np.array(answer["vectors"]), expected, atol=1e-5)


def test_a_cli_search_exports_once_then_uses_the_tower(catalog: Catalog, tmp_path: Path) -> None:
    from services import catalog_env

    model = write_tiny_clip(tmp_path / "clip")
    env = catalog_env(catalog, tmp_path / "home", FOOTAGE_CLIP_MODEL=model, FOOTAGE_MODELS_DIR=str(tmp_path / "models"))
    media = tmp_path / "media"
    media.mkdir()
    write_clip(media / "a.mp4", Clip(shots=(1.0, 1.0)))
    runner = CliRunner()
    assert runner.invoke(app, ["index", str(media)], env=env).exit_code == 0
    first = runner.invoke(app, ["search", "a red circle", "--json"], env=env)
    assert first.exit_code == 0, first.output
    towers = sorted((tmp_path / "models" / "text-towers").glob("*/text.onnx"))
    assert len(towers) == 1
    # A fresh process searches with the tower alone: no torch, open_clip or torchvision imported.
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "cli", "search", "a red circle", "--json"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {line.split("|")[-1].strip().split(".")[0] for line in done.stderr.splitlines() if "|" in line}
    assert "onnxruntime" in imported and not imported & {"torch", "open_clip", "torchvision"}
    # The same results; scores as near as two runtimes' float rounding of one tower (1e-4 is the export's bound).
    tower_results, full_results = (json.loads(out)["results"] for out in (done.stdout, first.stdout))
    assert _without_scores(tower_results) == _without_scores(full_results)
    np.testing.assert_allclose(_scores(tower_results), _scores(full_results), atol=1e-5)
    shutil.rmtree(tmp_path / "models")  # no export: the full model answers as before
    assert runner.invoke(app, ["search", "a red circle", "--json"], env=env).stdout == first.stdout


def _scores(results: list[dict]) -> list[float]:
    return [moment["score"] for family in results for moment in family["moments"]]


def _without_scores(results: list[dict]) -> list[dict]:
    return [
        {**family, "moments": [{k: v for k, v in moment.items() if k != "score"} for moment in family["moments"]]}
        for family in results
    ]
