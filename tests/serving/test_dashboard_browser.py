"""The dashboard in headless Chromium (Debian's ``chromium``, driven by Playwright): the
page loads from a real server, the charts draw the store's data, the experiment's
verdict is visible, and a screenshot goes to docs/dashboard.png.

Needs ``apt-get install chromium`` and the ``playwright`` Python package (its own
browser download is not used); without them the test is skipped, loudly.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from tailored.serving import create_app
from tailored.settings import Settings
from tailored.store import open_store

from .test_dashboard import Shop, build_shop, copy_shop

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PORTS = range(18400, 18500)
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"


def _skip(reason: str) -> None:
    warnings.warn(f"DASHBOARD BROWSER TEST SKIPPED: {reason}", stacklevel=2)
    pytest.skip(reason)


def _free_port() -> int:
    for port in PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


@pytest.fixture(scope="session")
def dashboard_shop(tmp_path_factory: pytest.TempPathFactory) -> Shop:
    return build_shop(tmp_path_factory.getbasetemp() / "dashboard-shop")


@contextmanager
def _serving(settings: Settings) -> Iterator[str]:
    """The API on 127.0.0.1 (uvicorn in a thread) until the block ends."""
    port = _free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                            log_level="warning", lifespan="on")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    try:
        while not running.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        running.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def server(dashboard_shop: Shop, tmp_path: Path) -> Iterator[str]:
    """The API over a copy of the shop's store, open (no key exists)."""
    with _serving(copy_shop(dashboard_shop, tmp_path)) as url:
        yield url


@pytest.fixture
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        _skip("no Chromium on this machine: `apt-get install -y chromium` to run it")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _skip("the playwright package is missing: `.venv/bin/pip install playwright`")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM,
                                              args=["--no-sandbox", "--disable-gpu"])
        try:
            yield launched
        finally:
            launched.close()


def test_dashboard_renders_the_store_in_chromium(browser: Any, server: str,
                                                 dashboard_shop: Shop) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{server}/dashboard")
    page.wait_for_selector("body[data-state=ready]", timeout=60_000)
    assert errors == [], errors

    # A number from the store, and the experiment's verdict as analyze() gives it.
    assert page.inner_text("#tile-events .value") == f"{dashboard_shop.events:,}"
    verdict = page.locator(f"[data-experiment='{dashboard_shop.experiment_id}']")
    assert verdict.is_visible()
    assert verdict.inner_text() == dashboard_shop.verdict
    assert "variant B wins" in verdict.inner_text()

    # Every chart drew the store's data: points per dataset, and pixels.
    drawn = page.evaluate("""() => [...document.querySelectorAll('canvas')].map(c => {
        const chart = Chart.getChart(c);
        return {id: c.id, width: c.width, height: c.height,
                points: chart ? chart.data.datasets.reduce(
                    (n, d) => n + d.data.filter(v => v !== null).length, 0) : 0};
    })""")
    charts = {c["id"]: c for c in drawn}
    assert set(charts) >= {"events-chart", "ctr-chart", "drift-chart",
                           "models-chart", "items-chart", "coverage-chart",
                           "tail-chart", "experiment-curve-0", "experiment-ctr-0"}
    for chart in charts.values():
        assert chart["width"] > 100 and chart["height"] > 100, chart
        assert chart["points"] > 0, f"{chart['id']} drew no data"
    events_total = page.evaluate("""() => Chart.getChart('events-chart').data.datasets
        .reduce((n, d) => n + d.data.reduce((a, b) => a + b, 0), 0)""")
    assert events_total == dashboard_shop.events
    versions = page.evaluate("() => Chart.getChart('models-chart').data.labels")
    assert versions == ["v1 popular", "v2 item_knn ★", "v3 popular"]
    painted = page.evaluate("""() => {
        const c = document.getElementById('events-chart');
        const pixels = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) n++;
        return n / (c.width * c.height);
    }""")
    assert painted > 0.05  # bars and axes, not a blank canvas

    # The CTR drift alert and the retraining decision are there for the operator.
    assert "open" in page.inner_text("#alerts")
    assert "CTR fell" in page.inner_text("#alerts")
    assert "kept version 2" in page.inner_text("#retrains")

    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 50_000


def test_the_page_asks_once_for_a_key_when_keys_exist(browser: Any, dashboard_shop: Shop,
                                                      tmp_path: Path) -> None:
    settings = copy_shop(dashboard_shop, tmp_path)
    with closing(open_store(settings.store_url)) as store:
        _key, secret = store.keys.create("dashboard", ["read"])
    with _serving(settings) as url:
        page = browser.new_page()
        page.goto(f"{url}/dashboard")
        page.wait_for_selector("#key-form:not([hidden])", timeout=30_000)
        assert page.locator("#main").is_hidden()
        page.fill("#key", "not-a-key")
        page.click("#key-form button[type=submit]")
        page.wait_for_function(
            "document.getElementById('key-error').textContent.includes('unknown')")
        page.fill("#key", secret)
        page.click("#key-form button[type=submit]")
        page.wait_for_selector("body[data-state=ready]", timeout=60_000)
        assert page.inner_text("#tile-events .value") == f"{dashboard_shop.events:,}"
        # Kept for the tab: a reload does not ask again.
        page.reload()
        page.wait_for_selector("body[data-state=ready]", timeout=60_000)
        assert page.locator("#key-form").is_hidden()
        assert "with an API key" in page.inner_text("#status")
        # Refreshing recomputes every figure, which a `read` key may not ask for: the
        # page keeps the key and shows the shared copy, saying why.
        page.click("#refresh")
        page.wait_for_function(
            "document.getElementById('status').textContent.includes('admin key')")
        assert page.locator("#key-form").is_hidden()
        assert page.inner_text("#tile-events .value") == f"{dashboard_shop.events:,}"
