"""Where the workbook keeps its artifacts, and writing them atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

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


def models_dir(data: Path, dataset_name: str = "digits") -> Path:
    """Where variants and their manifest live: ``<data>/models`` for the default dataset,
    ``<data>/models-<name>`` for any other, so runs on different datasets never mix. Created if
    missing."""
    stem = Path(dataset_name).stem
    path = Path(data) / ("models" if stem == "digits" else f"models-{stem}")
    path.mkdir(parents=True, exist_ok=True)
    return path


def results_dir(data: Path) -> Path:
    """``<data>/results``, created if missing."""
    path = Path(data) / "results"
    path.mkdir(parents=True, exist_ok=True)
    return path


def atomic_write_bytes(path: Path, payload: bytes) -> Path:
    """Write ``payload`` to ``path`` through a temp file and a rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def relative_to_data(path: Path, data: Path) -> str:
    """``path`` shown relative to the data folder's parent (``data/models/x.tflite``), for outputs
    that must not leak the machine's absolute paths."""
    path, data = Path(path).resolve(), Path(data).resolve()
    try:
        return str(Path(data.name) / path.relative_to(data))
    except ValueError:
        return path.name
