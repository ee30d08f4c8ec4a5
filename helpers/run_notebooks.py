"""Execute the numbered notebooks headless, in order, with visible progress.

    python -m helpers.run_notebooks                 # executed copies -> data/runs/
    python -m helpers.run_notebooks --inplace       # refresh the committed outputs (maintainers)
    python -m helpers.run_notebooks notebooks/02_*.ipynb

Each notebook runs in a fresh kernel (as a reader's "Restart & Run All"); a failing cell stops the
run with the notebook and cell named. Timings go to ``data/results/notebook_times.json``.

Kernels run with ``WORKBOOK_CONSOLE_PROGRESS=1`` (training prints its epoch lines on this console too)
and ``WORKBOOK_NOTEBOOK=<notebook>``. On a dataset other than the default, a claim tuned to the default
dataset that does not hold is a finding (:mod:`helpers.findings`), not a stop: they are listed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

from helpers import findings
from helpers.paths import atomic_write_text, data_dir, project_root, relative_to_data, results_dir

# LiteRT's native logger prints INFO lines on stderr (accelerator registration, and "DestroyAccelerator"
# when the kernel exits) and has no switch to turn them off. Only lines of that form are dropped from the
# kernel's stderr; warnings, errors and tracebacks pass through.
NATIVE_INFO = re.compile(r"^(INFO|VERBOSE): (\[[\w./-]+\.cc:\d+\] |Created TensorFlow Lite XNNPACK delegate)")


def forward_stderr(stream: IO[bytes], to: IO[str]) -> None:
    """Copy the kernel's stderr to ``to`` line by line, without LiteRT's native INFO lines."""
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace")
        if not NATIVE_INFO.match(line):
            to.write(line)
            to.flush()
    stream.close()


def _run_cells(client, nb, path: Path, position: str) -> None:
    from nbclient.exceptions import CellExecutionError
    from tqdm import tqdm

    code = [c for c in nb.cells if c.cell_type == "code"]
    for cell in code:  # a run that stops early leaves no output of an earlier run below the failure
        cell.outputs, cell.execution_count = [], None
    with tqdm(total=len(code), desc=f"{position} {path.name}", unit="cell", leave=True, file=sys.stdout) as bar:
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            try:
                client.execute_cell(cell, index)
            except CellExecutionError as exc:
                bar.close()
                raise SystemExit(f"\n{path.name}: cell {index} failed:\n{str(exc)[-2000:]}") from None
            bar.update(1)
    client.set_widgets_metadata()  # widget state, so GitHub and nbviewer draw the controls


def execute(path: Path, out: Path, timeout: int, position: str, partial: Path | None = None) -> float:
    """Run one notebook in a fresh kernel, cell by cell with a progress bar; write it to ``out``.

    When a cell fails, the notebook as far as it ran (with the error) is written to ``partial``
    (default ``out``) and the run stops with the notebook, the cell and that path named."""
    import nbformat
    from nbclient import NotebookClient
    from traitlets.config import Config

    nb = nbformat.read(path, as_version=4)
    # The kernel talks to us over local (IPC) sockets instead of TCP: no network port, nothing to encrypt
    # (ipykernel warns about unencrypted TCP). Their path is absolute and private to this kernel.
    sockets = Path(tempfile.mkdtemp(prefix="workbook-kernel-"))
    config = Config()
    config.KernelManager.transport = "ipc"
    config.KernelManager.ip = str(sockets / "ipc")
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", config=config, startup_timeout=180,
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    # The kernel's stderr goes through a pipe read from the start, filtered (see NATIVE_INFO).
    read_end, write_end = os.pipe()
    forwarder = threading.Thread(target=forward_stderr, args=(os.fdopen(read_end, "rb"), sys.stderr), daemon=True)
    forwarder.start()
    try:
        with client.setup_kernel(stderr=write_end):
            os.close(write_end)  # the kernel holds its copy; the pipe ends when the kernel exits
            write_end = -1
            _run_cells(client, nb, path, position)
    except SystemExit as failed:  # a cell failed: keep what ran, with the error, for the reader to open
        partial = partial or out
        partial.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(partial, nbformat.writes(nb) + "\n")
        raise SystemExit(f"{failed.code}\nThe notebook as far as it ran, with the error: {partial}") from None
    finally:
        if write_end != -1:
            os.close(write_end)
        forwarder.join(timeout=10)
        shutil.rmtree(sockets, ignore_errors=True)
    elapsed = time.perf_counter() - start
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, nbformat.writes(nb) + "\n")
    return elapsed


def report_findings(data: Path, dataset: str, to: IO[str] | None = None) -> list[str]:
    """Print the findings recorded for ``dataset`` and where they are written; return them."""
    to = to or sys.stdout
    if findings.is_default(dataset):
        return []
    lines = findings.summary(data, dataset)
    where = relative_to_data(findings.findings_path(data, dataset), data)
    if lines:
        to.write(f"{len(lines)} finding(s) on {dataset} (claims tuned to the default dataset that do not hold "
                 f"here), written to {where}:\n")
        to.writelines(f"  - {line}\n" for line in lines)
    else:
        to.write(f"no findings on {dataset}: every claim tuned to the default dataset held ({where})\n")
    to.flush()
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/[0-9]*.ipynb in order")
    parser.add_argument("--inplace", action="store_true", help="overwrite the notebooks with their outputs")
    parser.add_argument("--timeout", type=int, default=900, help="seconds a cell may take")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted((project_root() / "notebooks").glob("[0-9]*.ipynb"))
    if not notebooks:
        print("no notebooks found", file=sys.stderr)
        return 2
    from helpers.data import DOWNLOADABLE, DatasetUnavailableError, dataset_name, load_dataset
    from helpers.paths import models_dir

    data, dataset = data_dir(), dataset_name()
    if not findings.is_default(dataset) and dataset not in DOWNLOADABLE:
        try:  # a missing or malformed .npz, or an unknown name: one error now, not a traceback in notebook 01
            load_dataset(dataset)
        except DatasetUnavailableError as exc:
            print(f"WORKBOOK_DATASET={dataset}: {exc}", file=sys.stderr)
            return 2
    if args.inplace and not findings.is_default(dataset):
        print(f"--inplace writes the committed outputs, which come from the default dataset, not {dataset}: "
              "unset WORKBOOK_DATASET, or run without --inplace (outputs go to the data folder's runs/).",
              file=sys.stderr)
        return 2
    runs = data / "runs"
    times: dict[str, float] = {}
    total = time.perf_counter()
    before = dict(os.environ)
    os.environ.setdefault("WORKBOOK_CONSOLE_PROGRESS", "1")  # the kernels inherit it: epoch lines here
    try:
        for i, nb in enumerate(notebooks, 1):
            out = nb if args.inplace else runs / nb.name
            os.environ[findings.NOTEBOOK_ENV] = nb.stem
            if not findings.is_default(dataset):
                findings.clear(data, dataset, nb.stem)  # this run's findings replace the last run's
            times[nb.name] = round(execute(nb.resolve(), out, args.timeout, f"[{i}/{len(notebooks)}]",
                                           partial=runs / nb.name), 1)
            print(f"    {nb.name}: {times[nb.name]:.0f} s")
    finally:
        for name in ("WORKBOOK_CONSOLE_PROGRESS", findings.NOTEBOOK_ENV):  # as the caller had them
            if name in before:
                os.environ[name] = before[name]
            else:
                os.environ.pop(name, None)
        report_findings(data, dataset)
    times["total"] = round(time.perf_counter() - total, 1)
    atomic_write_text(results_dir(data) / "notebook_times.json", json.dumps(times, indent=2) + "\n")
    models = relative_to_data(models_dir(data, dataset), data)
    print(f"all {len(notebooks)} notebooks ran in {times['total'] / 60:.1f} min; "
          f"outputs in {'the notebooks' if args.inplace else relative_to_data(runs, data) + '/'}, models in {models}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
