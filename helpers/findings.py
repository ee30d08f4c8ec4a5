"""Claims tuned to the default dataset: a failure on digits, a recorded finding on any other.

A notebook's targets ("the baseline reaches 97 %", "int8 stays within 0.5 points") are set for the
default ``digits`` dataset. On that dataset a claim that does not hold fails the run, as an
``assert`` does, so CI catches a regression. On your own dataset the same claim is a *finding*
about that data: it is printed as one line, recorded in ``<data>/results/<dataset>/findings.json``,
and the notebook goes on::

    claim = findings.for_notebook("04_pruning", ds.name, DATA)      # once, in Setup
    claim(acc >= base_acc - 0.01, "50 % sparsity should cost at most 1 point", accuracy=acc, baseline=base_acc)

Sanity checks that must hold on any data (shapes, file validity, a pipeline's consistency) stay
plain ``assert`` statements. No TensorFlow import here.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable

from helpers.paths import DEFAULT_DATASET, atomic_write_text, dataset_key, results_dir

NOTEBOOK_ENV = "WORKBOOK_NOTEBOOK"  # set by helpers.run_notebooks for each kernel it starts
FINDINGS_FILE = "findings.json"


def to_console(text: str) -> None:
    """Write ``text`` to the console that started this kernel, not to the notebook's output.

    ipykernel points file descriptor 1 at a pipe it copies into the notebook, and keeps the
    original descriptor as ``sys.stdout._original_stdstream_copy``: write there. Outside a kernel
    (``sys.stdout`` is the console itself) nothing is written, so nothing prints twice."""
    fd = getattr(sys.stdout, "_original_stdstream_copy", None)
    try:
        if isinstance(fd, int):
            os.write(fd, text.encode("utf-8", errors="replace"))
        elif sys.__stdout__ is not None and sys.stdout is not sys.__stdout__:
            sys.__stdout__.write(text)
            sys.__stdout__.flush()
    except (OSError, ValueError):  # no console attached: the notebook output still has the line
        pass


def findings_path(data: Path, dataset: str) -> Path:
    """``<data>/results/<dataset key>/findings.json``: beside that dataset's report (the default
    dataset never records findings; its claims fail instead)."""
    return results_dir(data) / dataset_key(dataset) / FINDINGS_FILE


def is_default(dataset: str) -> bool:
    """True for the default dataset, on which every claim is a hard assertion."""
    return dataset_key(dataset) == DEFAULT_DATASET


def _plain(value: Any) -> Any:
    """A JSON-safe copy of a measured value (numpy scalars to Python, NaN/inf to None, else repr)."""
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return repr(value)


def _show(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _notebook_name(notebook: str | None) -> str:
    if notebook:
        return notebook
    if os.environ.get(NOTEBOOK_ENV):
        return os.environ[NOTEBOOK_ENV]
    session = os.environ.get("JPY_SESSION_NAME")  # set by Jupyter Server for a notebook's kernel
    return Path(session).stem if session else "notebook"


def _lock(path: Path) -> Any:
    from filelock import FileLock

    return FileLock(str(path) + ".lock", timeout=60, is_singleton=True)


def load(data: Path, dataset: str) -> list[dict[str, Any]]:
    """The findings recorded for ``dataset`` (empty when there are none)."""
    path = findings_path(data, dataset)
    if not path.exists():
        return []
    try:
        return list(json.loads(path.read_text(encoding="utf-8"))["findings"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a findings file ({exc}); delete it, it is rewritten by the next run.") from exc


def _rewrite(data: Path, dataset: str, edit: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> None:
    path = findings_path(data, dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock(path):
        before = load(data, dataset)
        after = edit(before)
        if after != before:
            atomic_write_text(path, json.dumps({"dataset": dataset, "findings": after}, indent=2) + "\n")


def clear(data: Path, dataset: str, notebook: str | None = None) -> None:
    """Forget the findings of ``notebook`` (all of them when None): a notebook about to run again."""
    if not findings_path(data, dataset).exists():
        return
    _rewrite(data, dataset, lambda found: [f for f in found if notebook is not None and f["notebook"] != notebook])


def claim(
    ok: Any,
    message: str,
    *,
    notebook: str | None = None,
    dataset: str | None = None,
    data: Path | None = None,
    **measured: Any,
) -> bool:
    """Check a claim tuned to the default dataset; return whether it holds.

    On the default dataset (``digits``) a claim that does not hold raises ``AssertionError(message)``,
    like ``assert ok, message``. On any other dataset it prints ``finding: <notebook>: <message>
    (<measured values>)``, records the finding in :func:`findings_path` (under a lock: several
    notebooks may write at once; a finding with the same notebook and message replaces the older one,
    and a claim that now holds removes it) and returns False. ``measured`` (keyword arguments) are
    the numbers behind the claim, recorded with it. ``dataset`` defaults to ``$WORKBOOK_DATASET``
    (else digits), ``data`` to :func:`helpers.paths.data_dir`, ``notebook`` to the name
    :mod:`helpers.run_notebooks` or Jupyter gives the kernel.
    """
    from helpers.data import dataset_name
    from helpers.paths import data_dir

    holds = bool(ok)
    dataset = dataset_name(dataset)
    if is_default(dataset):
        if not holds:
            raise AssertionError(message)
        return True
    data = Path(data) if data is not None else data_dir()
    notebook = _notebook_name(notebook)

    def same(f: dict[str, Any]) -> bool:
        return f["notebook"] == notebook and f["message"] == message

    if holds:
        if findings_path(data, dataset).exists():
            _rewrite(data, dataset, lambda found: [f for f in found if not same(f)])
        return True
    values = {k: _plain(v) for k, v in measured.items()}
    entry = {"notebook": notebook, "message": message, "measured": values,
             "recorded": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    _rewrite(data, dataset, lambda found: [f for f in found if not same(f)] + [entry])
    shown = ", ".join(f"{k}={_show(v)}" for k, v in values.items())
    line = f"finding: {notebook}: {message}" + (f" ({shown})" if shown else "")
    print(line)
    if os.environ.get("WORKBOOK_CONSOLE_PROGRESS") == "1":  # a headless run: its console sees it too
        to_console(f"    {line}\n")
    return False


def for_notebook(notebook: str, dataset: str, data: Path) -> Callable[..., None]:
    """:func:`claim` with the notebook, dataset and data folder filled in, for a notebook's Setup:
    ``claim = findings.for_notebook("04_pruning", ds.name, DATA)``, then ``claim(ok, message, **measured)``.

    Like an ``assert`` statement it returns nothing, so a claim on a cell's last line shows no
    ``True`` under the cell (use :func:`claim` itself for the bool)."""

    def bound_claim(ok: Any, message: str, **measured: Any) -> None:
        claim(ok, message, notebook=notebook, dataset=dataset, data=data, **measured)

    return bound_claim


def summary(data: Path, dataset: str) -> list[str]:
    """One line per recorded finding, for the end of a run."""
    lines = []
    for f in load(data, dataset):
        shown = ", ".join(f"{k}={_show(v)}" for k, v in f.get("measured", {}).items())
        lines.append(f"{f['notebook']}: {f['message']}" + (f" ({shown})" if shown else ""))
    return lines
