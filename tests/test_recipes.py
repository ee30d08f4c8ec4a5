"""Every code cell tagged ``recipe`` runs on its own, as an engineer pasting it into a project would.

Each recipe runs in a fresh Python process, in an empty temporary folder, with a 120 s limit and
without the workbook: ``import helpers`` fails there, ``TF_USE_LEGACY_KERAS`` is not preset and no
``WORKBOOK_*`` variable is set. Every ``.tflite`` file the recipe wrote must then load and run in
``ai_edge_litert``. Run times go to ``<data>/results/recipe_times.json``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
TIME_LIMIT_S = 120

# Run before the recipe: make `helpers` unimportable, whatever sys.path or an editable install say.
BLOCK_HELPERS = """
import sys
class _NoWorkbook:
    def find_spec(self, name, path=None, target=None):
        if name == "helpers" or name.startswith("helpers."):
            raise ModuleNotFoundError("the workbook's helpers are not available to a recipe", name=name)
        return None
sys.meta_path.insert(0, _NoWorkbook())
try:
    import helpers  # noqa: F401
except ModuleNotFoundError:
    pass
else:
    raise SystemExit("helpers is importable: the recipe check would prove nothing")
source = open(sys.argv[1], encoding="utf-8").read()
exec(compile(source, sys.argv[1], "exec"), {"__name__": "__main__"})
"""


def _tags(cell: dict) -> list[str]:
    return list(cell.get("metadata", {}).get("tags") or [])


def recipe_cells() -> list[tuple[str, str]]:
    """(id, source) of every ``recipe`` cell in the numbered notebooks, in order."""
    found = []
    for path in sorted(NOTEBOOKS.glob("[0-9]*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        recipes = [c for c in cells if c["cell_type"] == "code" and "recipe" in _tags(c)]
        for k, cell in enumerate(recipes, 1):
            found.append((f"{path.stem}-{k}", "".join(cell["source"])))
    return found


RECIPES = recipe_cells()


def technique_notebooks() -> list[Path]:
    """Every numbered notebook except the results dashboard teaches a technique."""
    return [p for p in sorted(NOTEBOOKS.glob("[0-9]*.ipynb")) if "dashboard" not in p.stem]


@pytest.mark.parametrize("path", technique_notebooks(), ids=lambda p: p.stem)
def test_every_technique_notebook_has_a_recipe(path: Path) -> None:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    assert any(c["cell_type"] == "code" and "recipe" in _tags(c) for c in cells), (
        f"{path.name} has no code cell tagged 'recipe'")


def _run_tflite(path: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    rng = np.random.default_rng(0)
    for detail in interpreter.get_input_details():
        dtype = detail["dtype"]
        shape = [max(int(d), 1) for d in detail["shape"]]
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            value = rng.integers(max(info.min, -100), min(info.max, 100), size=shape).astype(dtype)
        else:
            value = rng.random(shape).astype(dtype)
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    for detail in interpreter.get_output_details():
        out = interpreter.get_tensor(detail["index"])
        assert out.size > 0, f"{path.name}: empty output"
        if np.issubdtype(out.dtype, np.floating):
            assert np.isfinite(out).all(), f"{path.name}: non-finite output"


def _record_time(recipe_id: str, seconds: float) -> None:
    data = os.environ.get("WORKBOOK_DATA_DIR")
    if not data:
        return
    out = Path(data) / "results" / "recipe_times.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    times = json.loads(out.read_text()) if out.exists() else {}
    times[recipe_id] = round(seconds, 1)
    out.write_text(json.dumps(times, indent=2, sort_keys=True) + "\n")


def test_recipes_exist() -> None:
    assert RECIPES, "no code cell in notebooks/ is tagged 'recipe'"


@pytest.mark.parametrize("recipe_id,source", RECIPES, ids=[r[0] for r in RECIPES])
def test_recipe_runs_alone(recipe_id: str, source: str, tmp_path: Path) -> None:
    assert not re.search(r"^\s*(from|import)\s+helpers\b", source, re.M), f"{recipe_id} imports the workbook's helpers"
    work = tmp_path / "project"
    work.mkdir()
    script = tmp_path / "recipe.py"
    script.write_text(source, encoding="utf-8")
    runner = tmp_path / "run_recipe.py"
    runner.write_text(BLOCK_HELPERS, encoding="utf-8")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("WORKBOOK_") and k not in {"TF_USE_LEGACY_KERAS", "PYTHONPATH"}}
    env["MPLBACKEND"] = "Agg"
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, str(runner), str(script)], cwd=work, env=env,
                              capture_output=True, text=True, timeout=TIME_LIMIT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{recipe_id} took longer than {TIME_LIMIT_S} s")
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, f"{recipe_id} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    written = sorted(work.rglob("*.tflite"))
    assert written, f"{recipe_id} wrote no .tflite file to the current folder"
    for path in written:
        _run_tflite(path)
    _record_time(recipe_id, elapsed)
