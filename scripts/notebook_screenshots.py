"""Screenshots of executed notebooks as JupyterLab shows them, for docs/screenshots/.

    python scripts/notebook_screenshots.py 00_quickstart [07_server_capacity ...]

Each notebook runs on a fresh kernel with nbclient (07 with smaller parameters than its
defaults, below: its default sweep takes about 15 minutes on 2 cores), is saved with its
outputs to a temporary folder, opened in JupyterLab in the system Chromium (the browser
test's machinery, tests/test_browser.py), and every code cell with an output becomes
docs/screenshots/<notebook>_<cell>.png. 03's screenshots come from the browser test itself
(AMS_UPDATE_SCREENSHOTS=1 pytest tests/test_browser.py). With AMS_EXECUTED_DIR set, the executed
notebooks are kept there and a later call shoots them again without running them.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from contextlib import suppress
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_browser import TOKEN, Lab, chromium_path  # noqa: E402 - the browser test's machinery
from test_notebooks import declared_names, with_parameters  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
# 07 at 60 s of video: a fleet of 4, and the capacity sweep over 1, 2 and 4 devices
# 06 on the first 40 s of real:drift (two scenes) with a student trained before, given as
# AMS_SCREENSHOT_STUDENT (e.g. runs/student_drift.weights.h5, docs/students.md); without it the
# notebook trains one itself (minutes).
PARAMETERS = {"07_server_capacity": {"max_seconds": 60, "sweep_devices": (1, 2, 4)},
              "06_real_clip": {"max_seconds": 40, "student_file": os.environ.get("AMS_SCREENSHOT_STUDENT")}}


def execute(name: str, folder: Path) -> Path:
    from nbclient import NotebookClient

    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    params = {k: v for k, v in PARAMETERS.get(name, {}).items() if k in declared_names(nb) and v is not None}
    nb = with_parameters(nb, params) if params else nb
    NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def without_widgets(path: Path) -> None:
    """Drop the widgets' outputs from an executed notebook: a saved widget shows the text it
    had when displayed (a progress bar's "0%| | 0/6", "interactive(children=..."), which a
    still would misread; the shots show the tables and figures."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if "application/vnd.jupyter.widget-view+json" not in o.get("data", {})]
    nbformat.write(nb, path)


def shoot(lab: Lab, name: str, chromium: str) -> list[Path]:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    shots = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        page.goto(f"{lab.base}/lab/tree/{name}.ipynb?token={TOKEN}")
        page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=90_000)
        with suppress(PlaywrightError):  # more room: close the file browser, when it is open
            page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current").click(timeout=5_000)
        page.wait_for_timeout(3000)
        cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell")  # this one, not a restored tab
        for k in range(cells.count()):
            cell = cells.nth(k)
            cell.evaluate("el => el.scrollIntoView({block: 'start'})")  # JupyterLab renders cells in view
            page.wait_for_timeout(1500)  # plotly draws once in view
            if not cell.locator(".jp-OutputArea-output").count():
                continue
            path = OUT / f"{re.sub(r'^[0-9]+_', '', name)}_cell{k}.png"
            try:
                cell.screenshot(path=str(path), timeout=20_000)
            except PlaywrightError as err:  # say which, and go on with the others
                print(f"{name}: cell {k} not shot: {str(err).splitlines()[0]}", file=sys.stderr)
                continue
            shots.append(path)
        browser.close()
    return shots


def main(names: list[str]) -> None:
    chromium = chromium_path()
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "notebooks"
        folder.mkdir()
        for name in names:
            done = Path(os.environ.get("AMS_EXECUTED_DIR", "/nonexistent")) / f"{name}.ipynb"
            if done.is_file():  # executed before (AMS_EXECUTED_DIR): shot again as it is
                shutil.copyfile(done, folder / done.name)
                continue
            print(f"executing {name} ...", flush=True)
            path = execute(name, folder)
            if os.environ.get("AMS_EXECUTED_DIR"):
                Path(os.environ["AMS_EXECUTED_DIR"]).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, done)
        for path in folder.glob("*.ipynb"):
            without_widgets(path)
        lab = Lab(folder, Path(tmp) / "jupyter")
        # every cell rendered, not only those in view (JupyterLab 4's default windowing)
        tracker = lab.home / "settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
        tracker.parent.mkdir(parents=True, exist_ok=True)
        tracker.write_text(json.dumps({"windowingMode": "none"}))
        try:
            lab.wait_ready(90)
            for name in names:
                for path in shoot(lab, name, chromium):
                    print(path.relative_to(ROOT))
        finally:
            lab.stop()


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
