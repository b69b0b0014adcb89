"""The live notebook in a real browser (issues #5, #15): JupyterLab on 127.0.0.1, driven by
Playwright through Debian's `chromium` (no browser download; `.ci/run` installs it).

A copy of notebooks/03_live_adaptation.ipynb with small parameters (as tests/test_notebooks.py
makes them) is opened in JupyterLab; the test runs all its cells and presses Start. The
reference scheme (`none`) runs first and its curve appears; then the frame picture must change
between the first and the second update's arrival, and the plot show two arrival markers. It
presses Step: the run pauses right after the next update reached the edge (within the batch of
frames that starts at the arrival) and stays paused, the picture showing the frames before and
after it. While paused it drags the `fraction` slider, sees the status report the pending
change, presses Resume, waits until the figure marks the update that applied it, and finally
reads the ledger: the updates before that one used the old fraction, it and those after it the
new one. The notebook must open unmodified, and JupyterLab's Log Console (where a widget
callback's exception lands, unseen in the notebook) must be empty at the end. Screenshots go to the test's artifact folder (printed on failure), and to
docs/screenshots/ with AMS_UPDATE_SCREENSHOTS=1.

Without chromium or the `playwright` package the test is skipped locally and fails in CI
(the `CI` environment variable set).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import suppress
from pathlib import Path

import nbformat
import pytest
from test_notebooks import declared_names, small_student, with_parameters  # noqa: F401 - fixture

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "03_live_adaptation.ipynb"
SCREENSHOTS = ROOT / "docs" / "screenshots"
# 120 s of video at height 64: updates at 20, 30, ..., 110 s, about 2 s of wall time apart on
# a laptop CPU, about 35 s in all (after the reference, `none`, about 10 s): enough updates left
# after the third one to step and move the slider.
PARAMS = {"max_seconds": 120, "height": 64, "autorun": False, "reference": "none"}
TOKEN = "ams-browser-test"
VIEWPORT = {"width": 1280, "height": 1500}  # the whole panel in view: controls, picture, plots
# Seconds to wait for: the server, the widgets after Run All (kernel start, TensorFlow import),
# two updates after Start (the reference runs first), the pause after Step, the change after
# Resume, the end of the run.
SERVER_S, WIDGETS_S, UPDATES_S, STEP_S, CHANGE_S, FINISH_S = 90, 180, 300, 60, 60, 180
EDGE_BATCH_S = 32 / 5  # the laptop preset's edge batch (32 frames at 5 fps): a pause comes after one


def _missing(reason: str) -> None:
    """Fail in CI (it must run the test), skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: the browser test must run here; .ci/run installs it)",
                    pytrace=False)
    pytest.skip(reason)


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    _missing("no system Chromium: install Debian's package (apt-get install chromium); "
             "the test never downloads a browser")
    raise AssertionError  # unreachable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(base: str, path: str, method: str = "GET", timeout: float = 5.0):
    request = urllib.request.Request(f"{base}{path}", method=method,
                                     headers={"Authorization": f"token {TOKEN}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read()
    return json.loads(body) if body else None


def _our_processes(marker: str) -> list[int]:
    """Ids of live processes whose command line mentions `marker` (our private runtime folder:
    the kernels' connection files are there), so teardown ends only what this test started."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with suppress(OSError):
                if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(entry.name))
    return pids


class Lab:
    """A JupyterLab server on 127.0.0.1 serving `root`, in its own session, with private
    settings (no news pop-up), runtime and workspace folders."""

    def __init__(self, root: Path, home: Path) -> None:
        self.root, self.home = root, home
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = home / "jupyterlab.log"
        self.runtime = home / "runtime"
        settings = home / "settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True)
        (settings / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        env = dict(os.environ,
                   JUPYTER_RUNTIME_DIR=str(self.runtime), JUPYTER_CONFIG_DIR=str(home / "config"),
                   JUPYTER_DATA_DIR=str(home / "data"), IPYTHONDIR=str(home / "ipython"),
                   JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
                   JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
                   # a cache of reference runs of its own: the reference runs here, first
                   AMS_DATA_DIR=str(home / "ams-data"),
                   # the kernel imports this checkout's amslib, as the test does
                   PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                   TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
        # `-m jupyterlab` is `jupyter lab` of this very interpreter (its venv's kernel: the
        # kernelspec's "python" is the server's sys.executable), whatever PATH holds.
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
               f"--port={self.port}", f"--IdentityProvider.token={TOKEN}",
               f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(cmd, cwd=root, env=env, stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True)

    def log_tail(self, chars: int = 3000) -> str:
        with suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with code {self.process.returncode}:\n"
                                   + self.log_tail())
            with suppress(OSError, urllib.error.URLError, ValueError):
                _api(self.base, "/api/status", timeout=2)
                return
            time.sleep(0.5)
        raise RuntimeError(f"JupyterLab did not answer on {self.base} within {timeout_s} s:\n"
                           + self.log_tail())

    def stop(self) -> None:
        """Shut the kernels and the server down through the API; then end what is left of
        the server's process group and of our kernels (by id) with signals."""
        if self.process.poll() is None:
            with suppress(Exception):
                for kernel in _api(self.base, "/api/kernels") or []:
                    with suppress(Exception):
                        _api(self.base, f"/api/kernels/{kernel['id']}", method="DELETE", timeout=10)
            with suppress(Exception):
                _api(self.base, "/api/shutdown", method="POST", timeout=10)
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(15)
        if self.process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        for pid in _our_processes(str(self.runtime)):  # kernels run in sessions of their own
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._log.close()


@pytest.fixture
def lab(tmp_path, small_student):  # noqa: F811 - the imported fixture
    """JupyterLab serving a folder with a small copy of 03_live_adaptation.ipynb."""
    root = tmp_path / "notebooks"
    root.mkdir()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # the docs' screenshots show the shipped, pretrained student (a sensible mIoU); the test
    # otherwise uses an untrained one, as tests/test_notebooks.py does
    docs = os.environ.get("AMS_UPDATE_SCREENSHOTS") == "1"
    values = {**PARAMS, "student": "default" if docs else small_student}
    nbformat.write(with_parameters(nb, {k: v for k, v in values.items() if k in declared_names(nb)}),
                   root / NOTEBOOK.name)
    server = Lab(root, tmp_path / "jupyter")
    try:
        server.wait_ready(SERVER_S)
        yield server
    finally:
        server.stop()


@pytest.fixture
def artifacts(tmp_path) -> Path:
    out = Path(os.environ.get("AMS_BROWSER_ARTIFACTS") or tmp_path / "artifacts")
    out.mkdir(parents=True, exist_ok=True)
    return out


# Every text the status label shows, recorded in the page as it changes: a pending change
# lasts only until the next update, which a poll could miss.
STATES = r"^(ready|loading|reference|running|pausing|paused|stopping|stopped|finished|failed|error)\b"
RECORD_STATUS = """(states) => {
  window.__amsStatus = [];
  const grab = () => {
    for (const el of document.querySelectorAll('.widget-html-content')) {
      const text = el.textContent;
      if (new RegExp(states).test(text) && window.__amsStatus.at(-1) !== text) window.__amsStatus.push(text);
    }
  };
  new MutationObserver(grab).observe(document.body, {subtree: true, childList: true, characterData: true});
  grab();
}"""
# The figure's update-arrival markers: the third trace of the top subplot (after the
# reference and the live mIoU); the reference's curve is its first.
ARRIVAL_POINTS = ".js-plotly-plot .subplot.xy .scatterlayer .trace:nth-child(3) path.point"
REFERENCE_LINE = ".js-plotly-plot .subplot.xy .scatterlayer .trace:nth-child(1) path.js-line"
# The frame picture's content (not its blob: URL, new at every redraw): bytes and an FNV-1a hash.
PICTURE_DIGEST = """async (img) => {
  if (!img.src) return null;
  const bytes = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
  let h = 2166136261;
  for (const b of bytes) { h ^= b; h = Math.imul(h, 16777619) >>> 0; }
  return `${bytes.length}:${h}:${img.naturalHeight}`;
}"""
# The ledger's tables, as header rows and body rows of cell texts.
LEDGER_ROWS = """(el) => {
  const texts = rows => Array.from(rows).map(r => Array.from(r.children).map(c => c.textContent.trim()));
  return Array.from(el.querySelectorAll('table.dataframe')).map(t => ({
    head: texts(t.querySelectorAll('thead tr')), rows: texts(t.querySelectorAll('tbody tr'))}));
}"""
ENDED = r"/^(stopped|finished|failed|error)/.test(s)"


def _updates_arrived(text: str) -> int:
    found = re.search(r"(\d+) updates arrived", text or "")
    return int(found.group(1)) if found else -1


def _video_s(text: str) -> float:
    """The video time done that a status line reports ('...: 42.0 / 120.0 s of video')."""
    found = re.search(r": ([\d.]+) / [\d.]+ s of video", text or "")
    return float(found.group(1)) if found else -1.0


def _running_with(n: int) -> str:
    """A page predicate: the status showed the run going with at least `n` updates arrived,
    or the run is over (then the caller's check fails at once)."""
    return ("() => (window.__amsStatus || []).some(s => "
            f"(/^running: /.test(s) && +((s.match(/(\\d+) updates arrived/) || [0, -1])[1]) >= {n}) || {ENDED})")


def _arrival_marker_near(page, t_s: float) -> float:
    """The x (video seconds) of the figure's arrival marker nearest `t_s`, from plotly's data."""
    xs = page.evaluate("() => Array.from(document.querySelectorAll('.js-plotly-plot'))"
                       ".flatMap(p => (p.data || []).filter(d => d.name === 'update arrived').flatMap(d => Array.from(d.x)))")
    return min(xs, key=lambda x: abs(x - t_s)) if xs else float("nan")


def log_console_entries(page) -> list[str]:
    """The texts JupyterLab's Log Console shows for the notebook (View > Show Log Console),
    at its default level (warning: a kernel's output outside any cell comes as error)."""
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^View$")).click()
    page.locator(".lm-Menu-item[data-command='logconsole:open']").click()
    panel = page.locator(".jp-LogConsolePanel")
    panel.wait_for(timeout=10_000)
    page.wait_for_timeout(1000)  # the console renders what its logger holds
    return panel.locator(".jp-OutputArea-child").all_inner_texts()


@pytest.fixture
def chromium() -> str:
    """The system chromium's path, checked before JupyterLab starts; and playwright's import."""
    path = chromium_path()
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("the `playwright` Python package is not installed (pip install -e '.[dev]')")
    return path


def test_live_notebook_in_chromium(chromium, lab, artifacts):
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    shots: list[Path] = []
    t0, phases = time.monotonic(), []

    def phase(name: str) -> None:
        phases.append(f"{name} {time.monotonic() - t0:.0f}s")

    def screenshot(page, name: str, panel) -> None:
        """The app's panel alone (controls, picture, plots and log)."""
        path = artifacts / name
        page.mouse.move(VIEWPORT["width"] - 5, VIEWPORT["height"] // 2)  # no plotly hover bar
        panel.screenshot(path=str(path))
        shots.append(path)
        if os.environ.get("AMS_UPDATE_SCREENSHOTS") == "1":
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, SCREENSHOTS / name)

    args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=args)
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(30_000)
        status = page.locator(".widget-html-content", has_text=" s of video")  # the app's status line

        def seen() -> str:
            """What the page showed, for failure messages."""
            parts = [f"artifacts: {artifacts}"]
            with suppress(PlaywrightError):
                parts.append("status history: " + json.dumps(page.evaluate("window.__amsStatus || []")[-8:]))
            with suppress(PlaywrightError):
                parts.append("status now: " + " / ".join(page.locator(".widget-html-content").all_inner_texts()))
            with suppress(PlaywrightError):
                errors = page.locator(".jp-OutputArea-output[data-mime-type*='stderr'], "
                                      ".jp-OutputArea-output[data-mime-type*='error']").all_inner_texts()
                if errors:
                    parts.append("notebook errors:\n" + "\n".join(errors)[-3000:])
            with suppress(PlaywrightError):
                page.screenshot(path=str(artifacts / "failure.png"))
                parts.append(f"screenshot: {artifacts / 'failure.png'}")
            parts.append("JupyterLab log tail:\n" + lab.log_tail(1500))
            return "\n".join(parts)

        def wait_for(predicate_js: str, arg, timeout_s: float, what: str) -> None:
            try:
                page.wait_for_function(predicate_js, arg=arg, timeout=timeout_s * 1000, polling=200)
            except PlaywrightError:
                pytest.fail(f"{what} within {timeout_s} s\n{seen()}", pytrace=False)

        try:
            page.goto(f"{lab.base}/lab/tree/{NOTEBOOK.name}?token={TOKEN}")
            page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=90_000)
            # more room for the notebook: close the file browser
            with suppress(PlaywrightError):
                page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current").click(timeout=5_000)

            # Run All before the kernel is up would ask to select a kernel
            try:
                page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\| Idle$")).first.wait_for(
                    timeout=WIDGETS_S * 1000)
            except PlaywrightError:
                pytest.fail(f"the notebook's kernel did not start within {WIDGETS_S} s\n{seen()}",
                            pytrace=False)
            # opened, with its kernel started, the notebook is still unmodified (issue #24)
            assert page.locator(".lm-TabBar-tab.jp-mod-dirty").count() == 0, \
                f"the notebook shows as modified right after opening it\n{seen()}"
            # Run > Run All Cells
            page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
            page.locator(".lm-Menu-item[data-command='runmenu:run-all']").click()
            start = page.locator(".jupyter-widgets.jupyter-button", has_text="Start")
            try:
                start.wait_for(state="visible", timeout=WIDGETS_S * 1000)
            except PlaywrightError:
                pytest.fail(f"the app's Start button did not appear within {WIDGETS_S} s of Run All\n"
                            f"{seen()}", pytrace=False)
            page.evaluate(RECORD_STATUS, STATES)
            button = lambda name: page.locator(".jupyter-widgets.jupyter-button", has_text=name)  # noqa: E731
            panel = page.locator(".jupyter-widgets.widget-vbox", has=start).last
            picture = panel.locator("img.widget-image")

            def digest() -> str | None:
                return picture.evaluate(PICTURE_DIGEST)

            phase("widgets shown")
            start.click()
            wait_for("() => (window.__amsStatus || []).some(t => !t.startsWith('ready'))", None, 30,
                     "the status did not leave 'ready' after pressing Start")
            wait_for(_running_with(1), None, UPDATES_S, "the status did not report an update arrived after Start")
            try:
                page.wait_for_function(f"() => document.querySelector('{REFERENCE_LINE}')", timeout=10_000)
            except PlaywrightError:
                pytest.fail(f"the reference's curve is not drawn while the run goes\n{seen()}", pytrace=False)
            first_picture = digest()
            # two updates arrived, or the run is over (then the check below fails at once)
            wait_for(_running_with(2), None, UPDATES_S,
                     "the status did not report two updates arrived after pressing Start")
            history = page.evaluate("window.__amsStatus")
            if not any(_updates_arrived(t) >= 2 for t in history if t.startswith("running:")):
                pytest.fail(f"the run ended before two updates arrived\n{seen()}", pytrace=False)
            try:
                page.wait_for_function(f"() => document.querySelectorAll('{ARRIVAL_POINTS}').length >= 2",
                                       timeout=10_000)
            except PlaywrightError:
                pytest.fail(f"the status reports two updates but the figure has no two arrival markers\n"
                            f"{seen()}", pytrace=False)
            second_picture = digest()
            assert first_picture and second_picture and first_picture != second_picture, \
                f"the frame picture did not change between two moments of the run\n{seen()}"
            phase("two updates, the picture changed")
            panel.evaluate("el => el.scrollIntoView({block: 'start'})")
            screenshot(page, "live_adaptation_running.png", panel)

            # Step: on to the next update's arrival, and pause there
            arrived_before = _updates_arrived(status.inner_text())
            button("Step").click()
            wait_for("() => (window.__amsStatus || []).some(s => /^paused: .*update arrived at frame/.test(s))",
                     None, STEP_S, "Step did not pause at an update's arrival")
            paused = status.inner_text()
            found = re.search(r"update arrived at frame (\d+) \(t = ([\d.]+) s\)", paused)
            assert paused.startswith("paused: ") and found, f"not paused at an arrival: {paused!r}\n{seen()}"
            arrival_s, done_s = float(found.group(2)), _video_s(paused)
            assert arrival_s < done_s <= arrival_s + EDGE_BATCH_S + 1e-6, \
                f"Step paused at {done_s} s of video, not right after the arrival at {arrival_s} s\n{seen()}"
            arrived_at_pause = _updates_arrived(paused)
            assert arrived_at_pause > arrived_before >= 2, f"no new update arrived at the pause: {paused!r}"
            marker_s = _arrival_marker_near(page, arrival_s)  # the arrival; the frame is the first at or after it
            assert 0 <= arrival_s - marker_s < 1 / 5 + 1e-6, \
                f"no arrival marker within a frame before {arrival_s} s (nearest: {marker_s})\n{seen()}"
            time.sleep(2.0)
            assert status.inner_text() == paused, f"the run went on after Step paused it\n{seen()}"
            pair = digest()
            assert pair != second_picture and int(pair.split(":")[2]) > int(second_picture.split(":")[2]), \
                f"the picture does not show the frames before and after the arrival\n{seen()}"
            phase("paused at an arrival")
            screenshot(page, "live_adaptation_step.png", panel)

            # While paused, drag the fraction slider to about 45% of its track (0.01 .. 1.0).
            slider = page.locator(".widget-hslider", has=page.locator("label", has_text="fraction"))
            handle = slider.locator(".noUi-handle")
            track = slider.locator(".noUi-target").bounding_box()
            knob = handle.bounding_box()
            old = round(float(slider.locator(".widget-readout").inner_text().strip()), 6)
            page.mouse.move(knob["x"] + knob["width"] / 2, knob["y"] + knob["height"] / 2)
            page.mouse.down()
            page.mouse.move(track["x"] + 0.45 * track["width"], knob["y"] + knob["height"] / 2, steps=8)
            page.mouse.up()
            readout = slider.locator(".widget-readout").inner_text().strip()
            new = round(float(readout), 6)
            assert new != old, f"dragging the fraction slider left it at {readout}\n{seen()}"
            change = f"fraction={new}"  # as the status, the ledger and the figure write it
            wait_for("t => (window.__amsStatus || []).some(s => s.startsWith('paused: ') && "
                     "s.includes('pending: ' + t))", change, 30,
                     f"the status never showed 'pending: {change}' while paused (status: {paused!r})")
            button("Resume").click()
            marked = ("t => Array.from(document.querySelectorAll('.js-plotly-plot .annotation-text'))"
                      ".some(a => a.textContent.trim() === t)")
            wait_for(f"t => ({marked})(t) || window.__amsStatus.some(s => {ENDED})", change, CHANGE_S,
                     f"the figure never marked an update applying {change}")
            if not page.evaluate(marked, change):
                pytest.fail(f"the run ended and no update applied {change} (no such mark in the "
                            f"figure)\n{seen()}", pytrace=False)
            phase("change applied")
            marked_at = _video_s(status.inner_text())
            deadline = time.monotonic() + 30  # a few seconds of video on, for the picture: the downlink's step
            while _video_s(status.inner_text()) < marked_at + 5 and time.monotonic() < deadline \
                    and not status.inner_text().startswith("finished"):
                time.sleep(0.5)
            screenshot(page, "live_adaptation_changed.png", panel)

            wait_for("() => (window.__amsStatus || []).some(t => t.startsWith('finished:'))", None,
                     FINISH_S, "the run did not finish")
            phase("run finished")
            final = page.evaluate("window.__amsStatus.at(-1)")
            assert "pending" not in final, f"a change is still pending at the end: {final}"
            assert "gain over none" in final and "drawing " in final, f"no gain or drawing cost: {final}"
            print("\nfinal status:", final)

            # Run the ledger cell (the last one) again, in place, and read its table.
            ledger_cell = page.locator(".jp-NotebookPanel .jp-CodeCell").last
            ledger_cell.locator(".jp-InputArea-editor").click()
            page.keyboard.press("Control+Enter")
            wait_for("() => { const t = Array.from(document.querySelectorAll("
                     "'.jp-NotebookPanel .jp-CodeCell')).at(-1).querySelector('table.dataframe tbody');"
                     " return t && t.children.length >= 5 }", None, 60,
                     "the ledger cell did not show the run's updates")
        except BaseException:
            if shots:
                print("screenshots so far:", *shots, sep="\n  ")
            raise

        tables = ledger_cell.locator(".jp-OutputArea").evaluate(LEDGER_ROWS)
        logged = log_console_entries(page)
        browser.close()

    # JupyterLab's Log Console gets what the kernel writes outside a cell, e.g. a widget
    # callback's traceback (plotly's, 23 of them in a live run: issue #24), at level error
    assert not logged, "JupyterLab's Log Console holds:\n" + "\n".join(logged)[-3000:]

    assert tables, "no ledger table in the ledger cell's output"
    head, rows = tables[-1]["head"], tables[-1]["rows"]
    # pandas writes the column names in the first header row and the index name below it
    columns = head[0][1:]
    ledger = [dict(zip(["update", *columns], row)) for row in rows]
    changes = [r["policy_changes"] for r in ledger]
    applied = [r for r in ledger if r["policy_changes"] not in ("", "NaN", "None", "nan")]
    assert [r["policy_changes"] for r in applied] == [change], \
        f"expected one update applying {change}; the ledger's policy_changes: {changes}"
    at = ledger.index(applied[0])
    fractions = [float(r["fraction"]) for r in ledger]
    assert fractions[:at] == [old] * at and fractions[at:] == [new] * (len(ledger) - at), \
        f"updates before the change must use {old}, it and later ones {new}: {fractions}"
    # the change was asked for while paused after `arrived_at_pause` updates had arrived; the
    # next update computed applies it (at most one more may have been on its way down then)
    assert arrived_at_pause <= at <= arrived_at_pause + 1, \
        (f"{change} was pending after {arrived_at_pause} updates arrived, but update "
         f"{ledger[at]['update']} (row {at + 1} of the ledger) applied it")
    phase("ledger read")
    print("\nat:", ", ".join(phases))
    print(f"{change} applied by update {ledger[at]['update']}; screenshots:", *shots, sep="\n  ")
