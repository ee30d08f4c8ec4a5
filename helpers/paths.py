"""Where the workbook keeps its artifacts, and writing them atomically."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Callable

DATA_DIR_ENV = "WORKBOOK_DATA_DIR"


def project_root() -> Path:
    """The checkout that holds ``helpers/`` (installed editable with ``pip install -e .``)."""
    return Path(__file__).resolve().parent.parent


def data_dir(create: bool = True) -> Path:
    """The workbook's ``data/`` folder, or ``$WORKBOOK_DATA_DIR`` when that is set."""
    path = Path(os.environ.get(DATA_DIR_ENV) or project_root() / "data")
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


DEFAULT_DATASET = "digits"


def npz_dataset_name(path: str | Path) -> str:
    """The name of a user's ``.npz`` dataset: ``npz-<stem>-<8 hex of the resolved path>``.

    Never equal to a built-in name (``digits``, ``mnist``, ...) and different for two files of the
    same stem in different folders, so a user's data never shares a models folder with another's."""
    path = Path(path).expanduser().resolve()
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", path.stem).strip("_") or "data"
    return f"npz-{stem}-{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"


def dataset_key(dataset_name: str) -> str:
    """The folder-safe name a dataset's artifacts are filed under: the name itself, or for a path
    to an ``.npz`` file, :func:`npz_dataset_name`."""
    if str(dataset_name).endswith(".npz"):
        return npz_dataset_name(dataset_name)
    key = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(dataset_name)).strip("._")
    if not key:
        raise ValueError(f"dataset name {dataset_name!r} has no letters or digits to name a folder after.")
    return key


def models_dir(data: Path, dataset_name: str = DEFAULT_DATASET) -> Path:
    """Where variants and their manifest live: ``<data>/models`` for the default dataset,
    ``<data>/models-<name>`` for any other (a user's ``.npz`` gets ``models-npz-<stem>-<hash>``),
    so runs on different datasets never mix. Created if missing."""
    key = dataset_key(dataset_name)
    path = Path(data) / ("models" if key == DEFAULT_DATASET else f"models-{key}")
    path.mkdir(parents=True, exist_ok=True)
    return path


def results_dir(data: Path) -> Path:
    """``<data>/results``, created if missing."""
    path = Path(data) / "results"
    path.mkdir(parents=True, exist_ok=True)
    return path


def dataset_results_dir(data: Path, models: Path) -> Path:
    """Where a notebook writes results that belong to one dataset: ``<data>/results`` for the default
    dataset's models folder (``models``), ``<data>/results/<name>`` for ``models-<name>``, so a run on
    another dataset never overwrites the default dataset's tables and figures. Created if missing.
    (Results that hold for every dataset, such as the latency lab's, stay in :func:`results_dir`.)"""
    name = Path(models).name
    out = results_dir(data) if name == "models" else results_dir(data) / name.removeprefix("models-")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _umask() -> int:
    """The process umask, read from /proc when possible (``os.umask`` to read it is not thread-safe)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def atomic_write_with(path: Path, write: Callable[[Path], None]) -> Path:
    """Write ``path`` atomically with any writer that takes a file name: ``write(tmp)`` fills a
    unique temp file in the same folder (same suffix, so ``savefig``/``model.save`` pick the right
    format), which is then renamed over ``path``. Readers never see half a file, two writers never
    share a temp name, and the temp file is removed when ``write`` fails.

    Example: ``atomic_write_with(out / "plot.png", lambda tmp: fig.savefig(tmp, dpi=120))``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        write(tmp)
        if tmp.is_file():
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: Path, payload: bytes) -> Path:
    """Write ``payload`` to ``path`` through a temp file and a rename: readers never see half a file."""
    return atomic_write_with(path, lambda tmp: tmp.write_bytes(payload))


def atomic_write_text(path: Path, text: str) -> Path:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (the manifest stores it so an app can verify a
    download). Lives here, with no numpy/pandas import, so the selector CLI starts fast;
    ``helpers.accounting.sha256`` is the same function."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def relative_to_data(path: Path, data: Path) -> str:
    """``path`` shown relative to the data folder's parent (``data/models/x.tflite``), for outputs
    that must not leak the machine's absolute paths."""
    path, data = Path(path).resolve(), Path(data).resolve()
    try:
        return str(Path(data.name) / path.relative_to(data))
    except ValueError:
        return path.name
