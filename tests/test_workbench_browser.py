"""Real-browser check of the workbench notebook: JupyterLab on 127.0.0.1, Debian's chromium
driven by Playwright. Opens the notebook, runs all cells, checks that no empty image shows,
presses Start, waits for the live plot, presses Stop, and saves a screenshot to
``test-artifacts/workbench-browser.png``.

Needs ``apt-get install -y chromium`` and ``pip install playwright`` (no ``playwright
install``: the system chromium is used). Run it with::

    .venv/bin/pytest -m "slow and browser" tests/test_workbench_browser.py -s
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "workbench.ipynb"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("AUTOOPT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

#: Steps to see live before pressing Stop.
MIN_STEPS = 30

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.notebook]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"jupyter lab did not answer {url.split('?')[0]} within {timeout:.0f}s")


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on a random free port with a token, serving a copy of the notebook."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no chromium at {CHROMIUM}: apt-get install -y chromium")
    pytest.importorskip(
        "playwright.sync_api", reason="pip install playwright (no browser download needed)"
    )
    work = tmp_path / "lab"
    work.mkdir()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    # Same notebook, its outputs kept in the temporary folder and a length that Stop can cut.
    params.source += f"\noutput_dir = {str(work / 'out')!r}\nstore_path = None\nsteps = 2000\n"
    nbformat.write(nb, work / "workbench.ipynb")
    # No "Jupyter news?" prompt over the screenshot (and no fetch: there is no network).
    settings = tmp_path / "jsettings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jcfg"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "jrt"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "jws"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "jsettings"),
    }
    log = open(tmp_path / "lab.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={work}",
            "--allow-root",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        cwd=work,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(f"{base}/api/status?token={token}", proc, timeout=120)
        yield {"base": base, "token": token, "work": work}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        if (tmp_path / "lab.log").exists():
            ARTIFACTS.mkdir(exist_ok=True)
            shutil.copy(tmp_path / "lab.log", ARTIFACTS / "workbench-browser-lab.log")


def test_workbench_in_a_real_browser(lab):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "workbench-browser.png"
    t0 = time.perf_counter()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1500})
            page.set_default_timeout(180_000)
            page.goto(f"{lab['base']}/lab/tree/workbench.ipynb?token={lab['token']}")
            page.wait_for_function(
                "() => window.jupyterapp && document.querySelector('.jp-Notebook .jp-Cell')"
            )
            # Wait for the kernel, then run every cell.
            page.wait_for_function(
                "() => { const w = window.jupyterapp.shell.currentWidget;"
                " return w && w.sessionContext && w.sessionContext.session"
                " && w.sessionContext.session.kernel"
                " && w.sessionContext.session.kernel.connectionStatus === 'connected'; }"
            )
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            start = page.locator("button.jupyter-button", has_text="Start")
            expect(start).to_be_visible()
            expect(page.locator(".widget-dropdown select").first).to_be_visible()
            stop = page.locator("button.jupyter-button", has_text="Stop")
            expect(stop).to_be_disabled()
            # No empty (broken) image before the first frame.
            expect(page.locator("img.widget-image")).to_be_hidden()
            start.click()  # the kernel loads the data and builds the models, then starts the thread
            expect(stop).to_be_enabled(timeout=120_000)
            # Live frames arrive while it trains: wait for some steps and at least one frame.
            page.wait_for_function(
                """() => { const t = [...document.querySelectorAll('.widget-html-content')]
                      .map(e => e.innerText).join(' ');
                    const m = t.match(/running: step (\\d+)\\/\\d+ .*?(\\d+) frames/);
                    return m && +m[1] >= MIN_STEPS && +m[2] >= 1; }""".replace(
                    "MIN_STEPS", str(MIN_STEPS)
                ),
                timeout=300_000,
            )
            img = page.locator("img.widget-image")
            expect(img).to_be_visible()
            assert (
                page.evaluate("() => document.querySelector('img.widget-image').naturalWidth") > 300
            )
            stop.click()
            expect(page.locator(".widget-html-content", has_text="stopped:")).to_be_visible(
                timeout=120_000
            )
            expect(start).to_be_enabled()
            page.locator(".widget-image").scroll_into_view_if_needed()
            page.screenshot(path=str(shot), full_page=False)
            text = page.locator(".widget-html-content", has_text="stopped:").inner_text()
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "workbench-browser-failure.png"), full_page=True)
            raise
        finally:
            browser.close()
    elapsed = time.perf_counter() - t0
    sys.stderr.write(f"\nbrowser check: {elapsed:.1f}s; status: {text}\n")
    assert shot.stat().st_size > 10_000
    assert len(list((lab["work"] / "out").glob("*/workbench.png"))) == 1  # the run's own folder
