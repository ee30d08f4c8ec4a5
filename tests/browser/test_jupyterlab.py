"""JupyterLab in a real browser: headless Chromium driven by Playwright (`make test-browser`).

The test starts JupyterLab on a free localhost port with a token it knows, opens the runtime-selection
notebook (a copy, so nothing is saved into notebooks/), runs every cell through the Run menu, checks
that no cell ends in an error, steps the profile widget through every device profile and compares the
choice it shows with `python -m helpers.select --profile P`, then opens data/results/report.html and
checks that its images load. Screenshots go to data/results/browser/. The server is always stopped.

It needs notebooks 07 and 08 to have run on WORKBOOK_DATA_DIR (the manifest and the report):
`make test-browser` does that first. Chromium is Debian's `chromium` (or $CHROMIUM); Playwright's
own browser download is not used.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

playwright_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (make test-browser installs it)")

from helpers.paths import data_dir, models_dir, project_root, results_dir  # noqa: E402
from helpers.selection import PROFILES  # noqa: E402

ROOT = project_root()
NOTEBOOK = ROOT / "notebooks" / "07_runtime_variant_selection.ipynb"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
RUN_ALL_TIMEOUT_S = 900
CHOICE = re.compile(r"chosen:\s*([A-Za-z0-9_.-]+)|(nothing fits|refused)")


def chromium_path() -> str | None:
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_server(url: str, process: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"JupyterLab exited with status {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    pytest.fail(f"JupyterLab did not answer {url.split('?')[0]} within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    """Stop the server we started (its whole process group: the kernels too)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def cli_choice(manifest: Path, profile: str) -> str:
    done = subprocess.run([sys.executable, "-m", "helpers.select", "--manifest", str(manifest), "--profile", profile],
                          capture_output=True, text=True, timeout=120)
    if done.returncode == 0:
        return done.stdout.split()[0]
    assert "no variant fits" in done.stderr, done.stderr  # a refusal, not a crash
    return "(refused)"


def widget_choice(text: str) -> str | None:
    found = CHOICE.findall(text)
    if not found:
        return None
    name, refused = found[-1]
    return name or "(refused)"


@pytest.fixture(scope="module")
def chromium() -> str:
    path = chromium_path()
    if path is None:
        message = "no Chromium on this machine (apt-get install chromium, or set CHROMIUM=/path/to/chromium)"
        if os.environ.get("WORKBOOK_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def data() -> Path:
    data = data_dir()
    manifest = models_dir(data) / "manifest.json"
    report = results_dir(data) / "report.html"
    missing = [p.name for p in (manifest, report) if not p.is_file()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing under {data}: run notebooks 07 and 08 on this WORKBOOK_DATA_DIR "
                    "first (make test-browser does).")
    return data


@pytest.fixture(scope="module")
def lab(tmp_path_factory, data):
    """JupyterLab on a free port, serving a copy of notebook 07; yields (base url, token, copy path)."""
    work = tmp_path_factory.mktemp("lab")
    root = work / "notebooks"
    root.mkdir()
    copy = root / NOTEBOOK.name
    shutil.copy2(NOTEBOOK, copy)
    settings = work / "user-settings"
    for plugin, values in {
        "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},  # every cell in the page
    }.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTERLAB_WORKSPACES_DIR=str(work / "workspaces"),
               JUPYTER_RUNTIME_DIR=str(work / "runtime"), WORKBOOK_DATA_DIR=str(data))
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log = work / "jupyterlab.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_server(f"{base}/api/status?token={token}", process, log)
        yield base, token, copy
    finally:
        stop(process)
    assert process.poll() is not None, "the JupyterLab server is still running"


def test_notebook_07_and_the_report_in_chromium(chromium, data, lab):
    base, token, copy = lab
    shots = results_dir(data) / "browser"
    shots.mkdir(parents=True, exist_ok=True)
    manifest = models_dir(data) / "manifest.json"
    problems: list[str] = []

    with playwright_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(Path(lab[2]).parent.parent / "chromium-profile"), executable_path=chromium, headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1400, "height": 1000})
        try:
            page = context.new_page()
            page.set_default_timeout(60_000)
            page.goto(f"{base}/lab/tree/{copy.name}?token={token}")
            page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for()
            wait_for_kernel(page)
            total = sum(c["cell_type"] == "code" for c in json.loads(copy.read_text())["cells"])
            code_cells = page.locator(".jp-Notebook .jp-CodeCell")
            for _ in range(120):  # the notebook renders its cells progressively
                if code_cells.count() == total:
                    break
                time.sleep(0.5)
            assert code_cells.count() == total, f"{code_cells.count()} of {total} code cells in the page"

            # Edit -> Clear Outputs of All Cells, then Run -> Run All Cells, from the menu bar as a reader would.
            menu(page, "Edit", "Clear Outputs of All Cells")
            menu(page, "Run", "Run All Cells")
            prompts = page.locator(".jp-Notebook .jp-CodeCell .jp-InputArea-prompt")
            started = time.monotonic()
            deadline = started + RUN_ALL_TIMEOUT_S
            while True:  # queued and running cells show [*]:, done ones [n]:; a failing cell clears the queue
                texts = [t.strip() for t in prompts.all_inner_texts()]
                done = [t for t in texts if re.fullmatch(r"\[\d+\]:", t)]
                if "[*]:" not in texts and (len(done) == total or time.monotonic() - started > 30):
                    break
                assert time.monotonic() < deadline, f"Run All did not finish in {RUN_ALL_TIMEOUT_S} s ({len(done)}/{total} cells)"
                time.sleep(2)
            print(f"Run All: {len(done)}/{total} code cells ran in {time.monotonic() - started:.0f} s")
            assert page.get_by_text("official Jupyter news").count() == 0, "the Jupyter news prompt is showing"
            page.locator(".jp-Notebook .jp-Cell").first.scroll_into_view_if_needed()
            page.screenshot(path=str(shots / "07_after_run_all.png"))

            # Save (our copy) and read every cell's outputs back: no error output, every code cell executed.
            page.locator(".jp-Notebook").first.click()
            before = copy.stat().st_mtime_ns
            page.keyboard.press("Control+s")
            for _ in range(60):
                if copy.stat().st_mtime_ns != before:
                    break
                time.sleep(0.5)
            saved = json.loads(copy.read_text())
            code = [c for c in saved["cells"] if c["cell_type"] == "code"]
            errors = [f"code cell {i + 1} ({''.join(c['source']).splitlines()[0][:60]!r}): {o.get('ename')}: {o.get('evalue')}"
                      for i, c in enumerate(code) for o in c.get("outputs", []) if o["output_type"] == "error"]
            assert errors == [], f"cells ended in an error: {errors}"
            unexecuted = [i for i, c in enumerate(code) if c.get("execution_count") is None]
            assert unexecuted == [] and len(done) == total, f"code cells not executed: {unexecuted}"
            assert page.locator(".jp-OutputArea-output", has_text="Traceback (most recent call last)").count() == 0

            # The profile widget: every device profile, the choice it shows against the CLI's.
            dropdown = page.locator(".widget-dropdown", has=page.locator("label", has_text=re.compile(r"^profile$")))
            select = dropdown.locator("select")
            select.scroll_into_view_if_needed()
            widget = page.locator(".widget-vbox", has=select).last
            options = [o for o in select.locator("option").all_inner_texts()]
            assert set(PROFILES) <= set(options), f"the widget lists {options}, the profiles are {list(PROFILES)}"
            for name in PROFILES:
                select.select_option(label=name)
                settle(page, widget)
                widget.screenshot(path=str(shots / f"07_widget_{name}.png"))
                shown, expected = widget_choice(widget.inner_text()), cli_choice(manifest, name)
                if shown != expected:
                    problems.append(f"profile {name}: the widget shows {shown or 'no choice as text'}, "
                                    f"`python -m helpers.select --profile {name}` gives {expected}")

            # The report notebook 08 wrote: every image loads.
            report = results_dir(data) / "report.html"
            page.goto(report.resolve().as_uri())
            page.wait_for_load_state("load")
            images = page.evaluate("() => [...document.images].map(i => ({src: i.getAttribute('src'), "
                                   "complete: i.complete, width: i.naturalWidth}))")
            page.screenshot(path=str(shots / "report.png"), full_page=True)
            assert images, "report.html shows no images"
            broken = [i["src"] for i in images if not (i["complete"] and i["width"] > 0)]
            assert broken == [], f"images that did not load in report.html: {broken}"
        except Exception:
            for p in context.pages:
                p.screenshot(path=str(shots / "failure.png"))
            raise
        finally:
            context.close()
    assert problems == [], "\n".join(problems)


def menu(page, top: str, item: str) -> None:
    """Click a menu bar entry, then one of its items (by their exact labels)."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{re.escape(top)}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).click()


def wait_for_kernel(page, timeout_s: float = 180) -> None:
    """Accept JupyterLab's kernel dialog if it asks, then wait until the kernel is idle."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        dialog = page.locator(".jp-Dialog")
        if dialog.count() and "Select Kernel" in dialog.first.inner_text():
            dialog.locator(".jp-mod-accept").first.click()
        if page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").count():
            return
        time.sleep(1)
    pytest.fail(f"the notebook's kernel did not become idle within {timeout_s:.0f} s")


def settle(page, widget, quiet_s: float = 2.0, timeout_s: float = 60.0) -> None:
    """Wait until the kernel is idle and the widget's HTML has stopped changing (the plot is redrawn)."""
    idle = page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")
    last, since, deadline = widget.inner_html(), time.monotonic(), time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = widget.inner_html()
        if now != last or not idle.count():
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
