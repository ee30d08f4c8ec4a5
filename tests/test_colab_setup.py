"""The notebooks' setup cell, run as Colab would run it, and `python -m helpers.colab stamp`.

Colab cannot be reached from a test, so each notebook's setup cell runs in a fresh Python process
that looks like Colab to it: `google.colab` is imported (a stand-in module), `WORKBOOK_REPO` is
stamped with a file:// address of this checkout (a real `git clone`), `WORKBOOK_HOME` is a temp
folder, and `python -m pip` resolves to a stand-in that records its arguments instead of installing.
Stamping itself runs on copies of the notebooks and README in a temp folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import colab
from helpers.paths import project_root

ROOT = project_root()
NOTEBOOKS = colab.notebook_paths(ROOT)
FAKE_COLAB = "import sys, types; sys.modules['google.colab'] = types.ModuleType('google.colab')\n"
# After the cell: report where the process stands and which helpers package it imports.
REPORT = textwrap.dedent("""
    import json, os, sys
    import helpers
    print("REPORT " + json.dumps({"cwd": os.getcwd(), "helpers": helpers.__file__,
                                  "legacy": os.environ.get("TF_USE_LEGACY_KERAS")}))
""")


def setup_cell(path: Path) -> str:
    cells = [c for c in json.loads(path.read_text(encoding="utf-8"))["cells"]
             if colab.SETUP_TAG in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{path.name}: one cell tagged 'setup' expected"
    return colab._source(cells[0])


def with_repo(cell: str, address: str) -> str:
    new = colab.REPO_LINE.sub(f'WORKBOOK_REPO = "{address}"', cell)
    assert new != cell or f'WORKBOOK_REPO = "{address}"' in cell
    return new


@pytest.fixture
def fake_pip(tmp_path: Path) -> tuple[Path, Path]:
    """A `pip` package placed first on PYTHONPATH: `python -m pip ...` appends argv + cwd to a log."""
    folder, log = tmp_path / "fake_pip", tmp_path / "pip_calls.jsonl"
    (folder / "pip").mkdir(parents=True)
    (folder / "pip" / "__init__.py").write_text("")
    (folder / "pip" / "__main__.py").write_text(
        "import json, os, sys\n"
        f"with open({str(log)!r}, 'a') as f:\n"
        "    f.write(json.dumps({'argv': sys.argv[1:], 'cwd': os.getcwd()}) + '\\n')\n")
    return folder, log


def run_cell(cell: str, tmp_path: Path, *, in_colab: bool, env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    script = tmp_path / "run_setup_cell.py"
    script.write_text((FAKE_COLAB if in_colab else "") + cell + "\n" + REPORT)
    env = {k: v for k, v in os.environ.items() if k not in ("TF_USE_LEGACY_KERAS", "PYTHONPATH", "WORKBOOK_HOME")}
    env.update(env_extra)
    start = tmp_path / "start"
    start.mkdir(exist_ok=True)
    return subprocess.run([sys.executable, str(script)], cwd=start, env=env, capture_output=True, text=True, timeout=120)


def report_of(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [l for l in done.stdout.splitlines() if l.startswith("REPORT ")]
    assert len(lines) == 1, done.stdout
    return json.loads(lines[0][len("REPORT "):])


def test_every_notebook_has_the_same_setup_cell():
    cells = {p.relative_to(ROOT).as_posix(): setup_cell(p) for p in NOTEBOOKS}
    assert len(cells) >= 8
    reference = cells["notebooks/01_baseline.ipynb"]
    assert 'os.environ["TF_USE_LEGACY_KERAS"] = "1"' in reference
    assert {name for name, cell in cells.items() if cell != reference} == set()


@pytest.mark.skipif(not (ROOT / ".git").exists() or shutil.which("git") is None,
                    reason="needs a git checkout of the workbook and git, to clone it")
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_setup_cell_in_colab_clones_installs_and_imports_helpers(notebook, tmp_path, fake_pip):
    folder, log = fake_pip
    home = tmp_path / "content" / "litert-optimization-workbook"
    cell = with_repo(setup_cell(notebook), ROOT.as_uri())  # file:///... : a real clone, no network
    done = run_cell(cell, tmp_path, in_colab=True, env_extra={"WORKBOOK_HOME": str(home), "PYTHONPATH": str(folder)})
    report = report_of(done)
    assert (home / ".git").is_dir() and (home / "requirements.txt").is_file(), "the workbook was cloned"
    assert Path(report["cwd"]) == home / "notebooks", "the notebook runs from the clone's notebooks/ folder"
    assert Path(report["helpers"]).resolve() == (home / "helpers" / "__init__.py").resolve(), \
        "`import helpers` finds the clone's helpers (data/ then lives beside them)"
    assert report["legacy"] == "1"
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert calls == [{"argv": ["install", "-q", "-r", "requirements.txt"], "cwd": str(home)}], \
        "the pinned requirements are installed once, from the clone"

    # Run again (e.g. after Colab restarts the session): no second clone or install, same place.
    again = report_of(run_cell(cell, tmp_path, in_colab=True,
                               env_extra={"WORKBOOK_HOME": str(home), "PYTHONPATH": str(folder)}))
    assert Path(again["cwd"]) == home / "notebooks"
    assert len(log.read_text().splitlines()) == 1


@pytest.mark.parametrize("notebook", NOTEBOOKS[:1] + NOTEBOOKS[-1:], ids=lambda p: p.stem)
def test_setup_cell_outside_colab_only_selects_keras_2(notebook, tmp_path, fake_pip):
    folder, log = fake_pip
    home = tmp_path / "home"
    probe = textwrap.dedent("""
        import json, os, sys
        before = (os.getcwd(), list(sys.path), dict(os.environ), set(sys.modules))
    """) + setup_cell(notebook) + textwrap.dedent("""
        env = {k: v for k, v in os.environ.items() if before[2].get(k) != v}
        print("PROBE " + json.dumps({"cwd_same": os.getcwd() == before[0], "path_same": sys.path == before[1],
                                     "env_changed": env, "subprocess": "subprocess" in set(sys.modules) - before[3]}))
    """)
    done = run_cell(probe, tmp_path, in_colab=False, env_extra={"WORKBOOK_HOME": str(home), "PYTHONPATH": str(folder)})
    line = next(l for l in done.stdout.splitlines() if l.startswith("PROBE "))
    probe_out = json.loads(line[len("PROBE "):])
    assert probe_out == {"cwd_same": True, "path_same": True, "env_changed": {"TF_USE_LEGACY_KERAS": "1"},
                         "subprocess": False}
    assert not home.exists() and not log.exists(), "nothing cloned or installed outside Colab"


def test_setup_cell_in_colab_without_an_address_gives_one_clear_error(tmp_path, fake_pip):
    folder, log = fake_pip
    cell = with_repo(setup_cell(NOTEBOOKS[0]), "")
    done = run_cell(cell, tmp_path, in_colab=True,
                    env_extra={"WORKBOOK_HOME": str(tmp_path / "absent"), "PYTHONPATH": str(folder)})
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("RuntimeError: ") and "WORKBOOK_REPO" in last, done.stderr
    assert not (tmp_path / "absent").exists() and not log.exists()


# --- python -m helpers.colab stamp, on copies ------------------------------------------------------

@pytest.fixture
def workbook_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "workbook"
    for nb in NOTEBOOKS:
        target = copy / nb.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(nb, target)
    shutil.copy2(ROOT / "README.md", copy / "README.md")
    shutil.copy2(ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


def set_repository(copy: Path, address: str, branch: str = "main") -> None:
    path = copy / "pyproject.toml"
    text = path.read_text()
    start = text.index("[tool.workbook]")
    path.write_text(text[:start] + f'[tool.workbook]\nrepository = "{address}"\nbranch = "{branch}"\n')


def stamp_cli(copy: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "helpers.colab", "stamp", "--root", str(copy)],
                          capture_output=True, text=True, timeout=60)


def snapshot(copy: Path) -> dict[str, bytes]:
    return {p.relative_to(copy).as_posix(): p.read_bytes() for p in sorted(copy.rglob("*")) if p.is_file()}


def test_committed_state_has_no_address_and_no_links():
    assert colab.read_settings(ROOT).repository == "" or all(
        f'WORKBOOK_REPO = "{colab.read_settings(ROOT).repository}"' in setup_cell(p) for p in NOTEBOOKS)
    readme = (ROOT / "README.md").read_text()
    assert readme.count(colab.LINKS_START) == 1 and readme.count(colab.LINKS_END) == 1
    if not colab.read_settings(ROOT).repository:
        assert "colab.research.google.com/github" not in readme
        assert all('WORKBOOK_REPO = ""' in setup_cell(p) for p in NOTEBOOKS)


def test_stamp_with_empty_address_changes_nothing(workbook_copy):
    before = snapshot(workbook_copy)
    done = stamp_cli(workbook_copy)
    assert done.returncode == 0, done.stderr
    assert "0 file(s) changed" in done.stdout and "no Colab links" in done.stdout
    assert snapshot(workbook_copy) == before


def test_stamp_github_address_sets_every_setup_cell_and_writes_links(workbook_copy):
    original = snapshot(workbook_copy)
    before = {p: json.loads(p.read_text()) for p in colab.notebook_paths(workbook_copy)}
    set_repository(workbook_copy, "https://github.com/example-org/litert-workbook.git", branch="dev")
    done = stamp_cli(workbook_copy)
    assert done.returncode == 0, done.stderr
    for path, old in before.items():
        new = json.loads(path.read_text())
        cell = setup_cell(path)
        assert 'WORKBOOK_REPO = "https://github.com/example-org/litert-workbook.git"' in cell
        # only that one line of that one cell changed; ids, tags and outputs are kept
        old_cells = [colab._source(c).replace('WORKBOOK_REPO = ""', "X") for c in old["cells"]]
        new_cells = [colab._source(c).replace('WORKBOOK_REPO = "https://github.com/example-org/litert-workbook.git"', "X")
                     for c in new["cells"]]
        assert old_cells == new_cells
        assert [c.get("id") for c in old["cells"]] == [c.get("id") for c in new["cells"]]
        assert [c.get("outputs") for c in old["cells"]] == [c.get("outputs") for c in new["cells"]]
    readme = (workbook_copy / "README.md").read_text()
    block = readme.split(colab.LINKS_START)[1].split(colab.LINKS_END)[0]
    top_level = [p for p in before if p.parent.name == "notebooks"]
    assert block.count("](https://colab.research.google.com/github/example-org/litert-workbook/blob/dev/notebooks/") \
        == len(top_level)
    for p in top_level:
        assert f"/blob/dev/notebooks/{p.name})" in block

    # stamping twice is a no-op; setting the address back to "" restores the files byte for byte
    assert "0 file(s) changed" in stamp_cli(workbook_copy).stdout
    set_repository(workbook_copy, "")
    assert stamp_cli(workbook_copy).returncode == 0
    assert "colab.research.google.com/github" not in (workbook_copy / "README.md").read_text()
    restored = snapshot(workbook_copy)
    assert {k: v for k, v in restored.items() if k != "pyproject.toml"} == \
        {k: v for k, v in original.items() if k != "pyproject.toml"}


def test_stamp_non_github_address_sets_cells_but_no_links(workbook_copy):
    set_repository(workbook_copy, "https://gitlab.example.org/team/workbook.git")
    done = stamp_cli(workbook_copy)
    assert done.returncode == 0 and "Not a GitHub address" in done.stdout
    assert all('WORKBOOK_REPO = "https://gitlab.example.org/team/workbook.git"' in setup_cell(p)
               for p in colab.notebook_paths(workbook_copy))
    assert "colab.research.google.com/github" not in (workbook_copy / "README.md").read_text()


@pytest.mark.parametrize("address, fragment", [
    ("https://github.com/a/b c.git", "is not a git address"),
    ('x" ; rm -rf /', "is not a git address"),
])
def test_stamp_refuses_a_malformed_address(workbook_copy, address, fragment):
    path = workbook_copy / "pyproject.toml"
    text = path.read_text()
    path.write_text(text[:text.index("[tool.workbook]")] + "[tool.workbook]\nrepository = " + json.dumps(address) + "\n")
    before = snapshot(workbook_copy)
    done = stamp_cli(workbook_copy)
    assert done.returncode == 2 and fragment in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert snapshot(workbook_copy) == before


def test_stamp_refuses_a_notebook_without_the_setup_cell(workbook_copy):
    nb_path = colab.notebook_paths(workbook_copy)[0]
    nb = json.loads(nb_path.read_text())
    for c in nb["cells"]:
        c.get("metadata", {}).pop("tags", None)
    nb_path.write_text(json.dumps(nb))
    set_repository(workbook_copy, "https://github.com/example-org/litert-workbook")
    done = stamp_cli(workbook_copy)
    assert done.returncode == 2 and nb_path.name in done.stderr and "tagged 'setup'" in done.stderr


def test_colab_url():
    assert colab.colab_url("git@github.com:o/r.git", "main", "notebooks/01_baseline.ipynb") == \
        "https://colab.research.google.com/github/o/r/blob/main/notebooks/01_baseline.ipynb"
    assert colab.colab_url("https://github.com/o/r", "main", "n.ipynb").endswith("/github/o/r/blob/main/n.ipynb")
    assert colab.colab_url("/srv/git/workbook.git", "main", "n.ipynb") is None
