"""Execute the numbered notebooks headless, in order, with visible progress.

    python -m helpers.run_notebooks                 # executed copies -> data/runs/
    python -m helpers.run_notebooks --inplace       # refresh the committed outputs (maintainers)
    python -m helpers.run_notebooks notebooks/02_*.ipynb

Each notebook runs in a fresh kernel (as a reader's "Restart & Run All"); a failing cell stops the
run with the notebook and cell named. Timings go to ``data/results/notebook_times.json``.
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

from helpers.paths import atomic_write_text, data_dir, project_root, results_dir

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


def execute(path: Path, out: Path, timeout: int, position: str) -> float:
    """Run one notebook in a fresh kernel, cell by cell with a progress bar; write it to ``out``."""
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
    finally:
        if write_end != -1:
            os.close(write_end)
        forwarder.join(timeout=10)
        shutil.rmtree(sockets, ignore_errors=True)
    elapsed = time.perf_counter() - start
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, nbformat.writes(nb) + "\n")
    return elapsed


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
    runs = data_dir() / "runs"
    times: dict[str, float] = {}
    total = time.perf_counter()
    for i, nb in enumerate(notebooks, 1):
        out = nb if args.inplace else runs / nb.name
        times[nb.name] = round(execute(nb.resolve(), out, args.timeout, f"[{i}/{len(notebooks)}]"), 1)
        print(f"    {nb.name}: {times[nb.name]:.0f} s")
    times["total"] = round(time.perf_counter() - total, 1)
    atomic_write_text(results_dir(data_dir()) / "notebook_times.json", json.dumps(times, indent=2) + "\n")
    print(f"all {len(notebooks)} notebooks ran in {times['total'] / 60:.1f} min; "
          f"outputs in {'the notebooks' if args.inplace else 'data/runs/'}, models in data/models/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
