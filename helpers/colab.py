"""Point the notebooks at the workbook's public git address, so they run in Google Colab.

    python -m helpers.colab show     # the address in pyproject.toml and the Colab links it gives
    python -m helpers.colab stamp    # write it into every notebook's setup cell and the README's links

The address is one setting, ``repository`` under ``[tool.workbook]`` in ``pyproject.toml`` (with
``branch``, default ``main``). ``stamp`` sets ``WORKBOOK_REPO = "<address>"`` in the cell tagged
``setup`` of every notebook under ``notebooks/`` (the cell clones from it when it runs in Colab)
and, for a GitHub address, writes one "Open in Colab" link per notebook into the README between
the ``colab-links`` markers. While the address is empty there are no links. Only the standard
library is used, so it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

SETUP_TAG = "setup"
REPO_LINE = re.compile(r'^WORKBOOK_REPO = "[^"\n]*"', re.MULTILINE)
LINKS_START, LINKS_END = "<!-- colab-links:start -->", "<!-- colab-links:end -->"
GITHUB = re.compile(r"^(?:https://github\.com/|git@github\.com:)([\w.-]+)/([\w.-]+?)(?:\.git)?/?$")
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"


class ColabSetupError(ValueError):
    """The setting or a notebook is not in the shape ``stamp`` needs; the message says what to fix."""


@dataclass(frozen=True)
class Settings:
    repository: str = ""
    branch: str = "main"


def read_settings(root: Path) -> Settings:
    """``[tool.workbook]`` of ``root/pyproject.toml`` (``repository`` empty when unset)."""
    path = Path(root) / "pyproject.toml"
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {}).get("workbook", {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ColabSetupError(f"cannot read {path.name}: {exc}; it must hold a [tool.workbook] table.") from None
    repository, branch = table.get("repository", ""), table.get("branch", "main")
    if not isinstance(repository, str) or not isinstance(branch, str):
        raise ColabSetupError("[tool.workbook] repository and branch in pyproject.toml must be strings.")
    repository = repository.strip()
    if any(c in repository for c in ' "\'\\\n\t'):
        raise ColabSetupError(f"[tool.workbook] repository = {repository!r} is not a git address "
                              "(e.g. https://github.com/<owner>/<name>.git); fix it in pyproject.toml.")
    if not re.fullmatch(r"[\w./-]+", branch):
        raise ColabSetupError(f"[tool.workbook] branch = {branch!r} is not a branch name; fix it in pyproject.toml.")
    return Settings(repository, branch)


def notebook_paths(root: Path) -> list[Path]:
    """Every notebook under ``root/notebooks`` (solutions included), checkpoints left out."""
    found = sorted((Path(root) / "notebooks").rglob("*.ipynb"))
    return [p for p in found if ".ipynb_checkpoints" not in p.parts]


def colab_url(repository: str, branch: str, notebook: str) -> str | None:
    """Colab's address for ``notebook`` (a path inside the repository), or None when the repository is
    not on GitHub (Colab opens notebooks straight from GitHub only)."""
    match = GITHUB.match(repository)
    if not match:
        return None
    owner, name = match.groups()
    return f"https://colab.research.google.com/github/{owner}/{name}/blob/{quote(branch)}/{quote(notebook)}"


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def stamped_notebook(path: Path, repository: str) -> str | None:
    """The notebook's text with ``WORKBOOK_REPO`` set in its ``setup`` cell, or None when it is already
    set so. Raises :class:`ColabSetupError` when the notebook has no standard setup cell."""
    path = Path(path)
    nb = json.loads(path.read_text(encoding="utf-8"))
    setup = [c for c in nb.get("cells", []) if SETUP_TAG in c.get("metadata", {}).get("tags", [])]
    if len(setup) != 1:
        raise ColabSetupError(f"{path.name}: expected one code cell tagged 'setup', found {len(setup)}; "
                              "copy the standard setup cell from notebooks/01_baseline.ipynb.")
    cell = setup[0]
    source = _source(cell)
    if len(REPO_LINE.findall(source)) != 1:
        raise ColabSetupError(f'{path.name}: the setup cell has no single line WORKBOOK_REPO = "..."; '
                              "copy the standard setup cell from notebooks/01_baseline.ipynb.")
    new = REPO_LINE.sub(lambda _: f'WORKBOOK_REPO = "{repository}"', source)
    if new == source:
        return None
    cell["source"] = new.splitlines(keepends=True) if isinstance(cell.get("source"), list) else new
    # nbformat's own layout (sorted keys, one-space indent, UTF-8), so only that line shows in a diff.
    return json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def links_markdown(settings: Settings, notebooks: list[str]) -> str:
    """The README's link list: one line per notebook, empty while there is no GitHub address."""
    lines = []
    for nb in notebooks:
        url = colab_url(settings.repository, settings.branch, nb)
        if url:
            lines.append(f"- [![Open In Colab]({COLAB_BADGE})]({url}) `{nb}`")
    return "\n".join(lines)


def stamp_readme(path: Path, links: str) -> bool:
    """Replace what lies between the ``colab-links`` markers; True when the file changed."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if text.count(LINKS_START) != 1 or text.count(LINKS_END) != 1 or text.index(LINKS_START) > text.index(LINKS_END):
        raise ColabSetupError(f"{path.name} needs one {LINKS_START} line followed by one {LINKS_END} line, "
                              "where the Colab links go.")
    head, rest = text.split(LINKS_START)
    _, tail = rest.split(LINKS_END)
    new = head + LINKS_START + "\n" + (links + "\n" if links else "") + LINKS_END + tail
    if new == text:
        return False
    path.write_text(new, encoding="utf-8")
    return True


def stamp(root: Path) -> list[Path]:
    """Write the address from ``root/pyproject.toml`` into every notebook and the README's links.
    Returns the files that changed."""
    root = Path(root)
    settings = read_settings(root)
    notebooks = notebook_paths(root)
    if not notebooks:
        raise ColabSetupError(f"no notebooks under {root / 'notebooks'}; run from the workbook's folder or pass --root.")
    updates = {p: stamped_notebook(p, settings.repository) for p in notebooks}  # all checked before any write
    changed = [p for p, text in updates.items() if text is not None]
    for p in changed:
        p.write_text(updates[p], encoding="utf-8")
    names = [p.relative_to(root).as_posix() for p in notebooks if "solutions" not in p.relative_to(root).parts]
    if stamp_readme(root / "README.md", links_markdown(settings, names)):
        changed.append(root / "README.md")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.colab", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["show", "stamp"])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="the workbook's folder (default: the one holding helpers/)")
    args = parser.parse_args(argv)
    try:
        settings = read_settings(args.root)
        if args.command == "stamp":
            changed = stamp(args.root)
            print(f"WORKBOOK_REPO = {json.dumps(settings.repository)}; "
                  f"{len(changed)} file(s) changed: {', '.join(p.relative_to(args.root).as_posix() for p in changed) or 'none'}")
        else:
            print(f"repository = {json.dumps(settings.repository)}, branch = {json.dumps(settings.branch)}")
        if not settings.repository:
            print("No address yet: set [tool.workbook] repository in pyproject.toml, then run "
                  "python -m helpers.colab stamp. There are no Colab links until then.")
        elif colab_url(settings.repository, settings.branch, "x") is None:
            print("Not a GitHub address: the setup cells clone from it, but Colab opens notebooks from GitHub "
                  "only, so the README gets no links.")
        elif args.command == "show":
            for nb in notebook_paths(args.root):
                print(colab_url(settings.repository, settings.branch, nb.relative_to(args.root).as_posix()))
    except ColabSetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
