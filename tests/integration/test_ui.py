"""The browser UI against the real daemon: Debian's Chromium, headless, driven by Playwright.

Each test starts `flashalpha run` (synthetic market, pricing workers) and loads the UI build the
daemon serves (web/dist, made by `make install`). Screenshots go to artifacts/ui/; with
FLASHALPHA_UPDATE_SCREENSHOTS=1 they also replace the README's pictures in docs/img/.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "artifacts" / "ui"
DOCS_IMAGES = ROOT / "docs" / "img"
#: As the machine notes prescribe for a closed network: no background connections, no GPU
#: (WebGL runs on SwiftShader, which is enough for plotly's 3D surface).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DAEMON_ARGS = ["--capacity", "200000", "--workers", "2"]
VIEWPORT = {"width": 1600, "height": 900}
#: Generous waits for a 2-core machine running the daemon, two workers and a browser at once.
WAIT_MS = 120_000

sync_api = pytest.importorskip("playwright.sync_api")

if not CHROMIUM.exists():
    pytest.skip(
        "Debian's chromium is not installed (make test installs it)", allow_module_level=True
    )
if not (ROOT / "web" / "dist" / "index.html").exists():
    pytest.fail("the UI is not built: run `make install` (npm ci && npm run build in web/)")


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Page:
    """A fresh browser context on one daemon; records what leaves loopback and console errors."""

    def __init__(self, browser, base_url: str):
        self.base_url = base_url
        self.context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
        self.page = self.context.new_page()
        self.page.set_default_timeout(WAIT_MS)
        self.foreign_requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", self._on_request)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _on_request(self, request) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("data", "blob"):
            return
        if parts.hostname not in ("127.0.0.1", "localhost"):
            self.foreign_requests.append(request.url)

    def goto(self, path: str) -> None:
        self.page.goto(self.base_url + path)

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path))
        if os.environ.get("FLASHALPHA_UPDATE_SCREENSHOTS") == "1":
            DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, DOCS_IMAGES / f"ui-{name}.png")
        return path

    def close(self) -> None:
        self.context.close()


@contextlib.contextmanager
def open_page(browser, daemon):
    """A fresh page on `daemon`; afterwards checks the page stayed local and raised nothing."""
    page = Page(browser, daemon.url)
    try:
        yield page
    finally:
        page.close()
    assert page.foreign_requests == [], "the UI loaded something from outside this machine"
    assert page.errors == [], f"uncaught errors in the page: {page.errors}"


@pytest.fixture
def ui(browser, daemon_factory):
    """(daemon, page) with the daemon running and a fresh page."""
    daemon = daemon_factory(DAEMON_ARGS).start()
    with open_page(browser, daemon) as page:
        yield daemon, page


def wait_status(page, status: str) -> None:
    page.wait_for_selector(f"[data-testid=connection-status][data-status={status}]")


def cell_texts(page) -> list[str]:
    """Text of every rendered chain cell, row by row."""
    return page.locator("[data-testid=chain-body] [role=cell]").all_inner_texts()


def test_chain_fills_updates_and_deep_links(ui):
    _, ui_page = ui
    page = ui_page.page
    ui_page.goto("/")
    # The start page picks SPY and puts it in the address bar.
    page.wait_for_url(re.compile(r"/chain/SPY$"))
    wait_status(page, "connected")
    # JSON unless asked otherwise: Chromium parses it faster than MessagePack is decoded.
    assert page.get_by_test_id("connection-status").get_attribute("data-protocol") == "json"
    page.wait_for_function(
        "document.querySelectorAll('[data-testid=chain-body] [role=row]').length >= 20"
    )
    spot = page.get_by_test_id("chain-spot").inner_text()
    assert re.fullmatch(r"[\d,]+\.\d\d", spot), spot

    # Live: within a few seconds some cell shows another value (quotes move, greeks fill in).
    before = cell_texts(page)
    page.wait_for_function(
        """(before) => {
            const now = [...document.querySelectorAll('[data-testid=chain-body] [role=cell]')]
                .map((c) => c.innerText);
            return now.length > 0 && now.some((text, i) => text !== before[i]);
        }""",
        arg=before,
    )
    assert any(re.fullmatch(r"\d+\.\d\d", text) for text in cell_texts(page))  # bids and asks
    # The grid is virtualized: far fewer rows in the DOM than strikes listed.
    rows_in_dom = page.locator("[data-testid=chain-body] [role=row]").count()
    assert rows_in_dom < 80
    # Another expiry (the first monthly-like one, 3+ weeks out): the address bar follows.
    tabs = page.locator("[data-testid=expiry-tabs] button")
    assert tabs.count() >= 2
    days = [int(text.rstrip("d")) for text in tabs.locator(".dte").all_inner_texts()]
    index = next(i for i, d in enumerate(days) if d >= 21)
    expiry = tabs.nth(index).get_attribute("data-expiry")
    tabs.nth(index).click()
    page.wait_for_url(re.compile(rf"/chain/SPY\?expiry={expiry}$"))
    page.wait_for_function(
        "document.querySelectorAll('[data-testid=chain-body] [role=row]').length >= 20"
    )
    # Greeks arrive from the pricing workers: most IV cells in view show percentages.
    page.wait_for_function(
        """() => {
            const cells = [...document.querySelectorAll(
                '[data-testid=chain-body] [data-field=iv]')];
            const filled = cells.filter((c) => /^\\d+\\.\\d$/.test(c.innerText));
            return cells.length >= 40 && filled.length >= 0.8 * cells.length;
        }"""
    )
    ui_page.screenshot("chain")

    # A reload lands on the same view (the daemon answers deep links with the app).
    page.reload()
    page.wait_for_selector(f"[data-testid=expiry-tabs] button.active[data-expiry='{expiry}']")
    page.wait_for_function(
        "document.querySelectorAll('[data-testid=chain-body] [role=row]').length >= 5"
    )
    # → steps to the next expiry.
    following = tabs.nth(index + 1).get_attribute("data-expiry")
    page.keyboard.press("ArrowRight")
    page.wait_for_url(re.compile(rf"/chain/SPY\?expiry={following}$"))


def test_spx_over_messagepack_with_am_and_pm_series(ui):
    """`?protocol=messagepack` switches the hub to MessagePack for the tab's session: the SPX
    chain (24k contracts, the largest snapshot of the demo market) fills and updates. Its
    monthlies are two series on one date: SPX, a.m.-settled (tab "… AM", key `DATE-am`), and
    SPXW, p.m.-settled; each has its own grid (one line per strike) and smile."""
    _, ui_page = ui
    page = ui_page.page
    ui_page.goto("/chain/SPX?protocol=messagepack")
    page.wait_for_selector("[data-testid=connection-status][data-protocol=messagepack]")
    wait_status(page, "connected")
    page.wait_for_function(
        "document.querySelectorAll('[data-testid=chain-body] [role=row]').length >= 20"
    )
    seq = page.get_by_test_id("chain-seq").inner_text()
    page.wait_for_function(
        "(s) => document.querySelector('[data-testid=chain-seq]').innerText !== s", arg=seq
    )
    assert re.fullmatch(r"[\d,]+\.\d\d", page.get_by_test_id("chain-spot").inner_text())

    # The first monthly: an a.m. tab next to the p.m. tab of the same date.
    tabs = page.locator("[data-testid=expiry-tabs] button")
    keys = [tabs.nth(i).get_attribute("data-expiry") for i in range(tabs.count())]
    am_key = next(k for k in keys if k.endswith("-am"))
    date = am_key.removesuffix("-am")
    assert keys.index(date) == keys.index(am_key) + 1, keys
    am_tab = page.locator(f"[data-testid=expiry-tabs] button[data-expiry='{am_key}']")
    assert re.search(r" AM\d+d$", am_tab.inner_text().replace("\n", "")), am_tab.inner_text()
    for key in (am_key, date):
        page.locator(f"[data-testid=expiry-tabs] button[data-expiry='{key}']").click()
        page.wait_for_url(re.compile(rf"/chain/SPX\?expiry={key}$"))
        page.wait_for_selector(f"[data-testid=expiry-tabs] button.active[data-expiry='{key}']")
        page.wait_for_function(
            "document.querySelectorAll('[data-testid=chain-body] [role=row]').length >= 20"
        )
        strikes = page.locator("[data-testid=chain-body] [role=row]").evaluate_all(
            "(rows) => rows.map((r) => r.dataset.strike)"
        )
        assert len(strikes) == len(set(strikes)), f"{key}: a strike twice in the grid"

    # The choice outlives in-app navigation and reloads: the surface's smile of the a.m. series.
    ui_page.goto(f"/surface/SPX?expiry={am_key}")
    page.wait_for_selector("[data-testid=connection-status][data-protocol=messagepack]")
    page.wait_for_function(
        "(e) => document.querySelector(\"select[aria-label='Smile expiry']\")?.value === e",
        arg=am_key,
    )
    options = page.locator("select[aria-label='Smile expiry'] option")
    values = options.evaluate_all("(os) => os.map((o) => o.value)")
    assert date in values, values
    assert options.nth(values.index(am_key)).inner_text().endswith(" AM")
    page.wait_for_selector("[data-testid=smile-plot] .js-plotly-plot")
    smile = _plot_traces(page, "smile-plot")
    assert all(t["points"] >= 5 for t in smile), smile

    # ?protocol=json goes back.
    ui_page.goto("/chain/SPX?protocol=json")
    page.wait_for_selector("[data-testid=connection-status][data-protocol=json]")
    wait_status(page, "connected")
    page.wait_for_function(
        "document.querySelectorAll('[data-testid=chain-body] [role=row]').length >= 20"
    )


def test_unknown_underlying_is_named(ui):
    _, ui_page = ui
    ui_page.goto("/chain/NOSUCH")
    error = ui_page.page.get_by_test_id("chain-error")
    error.wait_for()
    assert "NOSUCH" in error.inner_text()


def _plot_traces(page, test_id: str) -> list[dict]:
    """The traces plotly drew in one panel (their type and number of points)."""
    return page.evaluate(
        """(id) => {
            const graph = document.querySelector(`[data-testid=${id}] .js-plotly-plot`);
            if (!graph || !graph._fullData) return [];
            return graph._fullData.map((t) => ({
                type: t.type,
                points: t.type === 'surface'
                    ? t.z.flat().filter((v) => v !== null && Number.isFinite(v)).length
                    : (t.y || []).filter((v) => v !== null && Number.isFinite(v)).length,
            }));
        }""",
        test_id,
    )


def test_surface_smile_and_term_structure_render(ui):
    _, ui_page = ui
    page = ui_page.page
    ui_page.goto("/surface/SPY")
    wait_status(page, "connected")
    for test_id in ("surface-plot", "smile-plot", "term-plot"):
        page.wait_for_selector(f"[data-testid={test_id}] .js-plotly-plot")
    page.wait_for_function(
        """() => {
            const g = document.querySelector('[data-testid=surface-plot] .js-plotly-plot');
            return g && g._fullData && g._fullData[0].z.length >= 3;
        }"""
    )
    surface = _plot_traces(page, "surface-plot")
    assert surface[0]["type"] == "surface" and surface[0]["points"] >= 30, surface
    # The 3D scene is drawn with WebGL.
    assert page.locator("[data-testid=surface-plot] canvas").count() >= 1
    smile = _plot_traces(page, "smile-plot")
    assert [t["type"] for t in smile] == ["scatter"] * 3
    assert all(t["points"] >= 5 for t in smile), smile
    term = _plot_traces(page, "term-plot")
    assert term[0]["points"] >= 3, term
    page.wait_for_timeout(1500)  # let the WebGL scene finish its first frames for the picture
    ui_page.screenshot("surface")

    # By strike: the same grid with strikes (SPY trades in the hundreds) on the x axis.
    page.get_by_role("button", name="Strike").click()
    page.wait_for_function(
        """() => {
            const g = document.querySelector('[data-testid=surface-plot] .js-plotly-plot');
            return g && g._fullData && g._fullData[0].x.every((x) => x > 100);
        }"""
    )

    # Deep link with an expiry selects that smile, also after a reload.
    expiry = page.locator("select[aria-label='Smile expiry'] option").nth(1).get_attribute("value")
    page.select_option("select[aria-label='Smile expiry']", expiry)
    page.wait_for_url(re.compile(rf"/surface/SPY\?expiry={expiry}$"))
    page.reload()
    page.wait_for_function(
        "(e) => document.querySelector(\"select[aria-label='Smile expiry']\")?.value === e",
        arg=expiry,
    )


def test_reconnects_and_resubscribes_after_a_daemon_restart(ui, daemon_factory):
    daemon, ui_page = ui
    page = ui_page.page
    ui_page.goto("/chain/SPY")
    wait_status(page, "connected")
    page.wait_for_function(
        "document.querySelectorAll('[data-testid=chain-body] [role=row]').length >= 20"
    )
    assert daemon.stop() == 0
    page.wait_for_selector(
        "[data-testid=connection-status]:is([data-status=reconnecting],[data-status=disconnected])"
    )
    # The numbers on screen are old now, and look it.
    page.wait_for_selector(".app[data-stale=true]")
    # A new daemon on the same address: the page reconnects by itself, subscribes again and
    # continues from the new snapshot (the new daemon's seq starts over).
    restarted = daemon_factory(DAEMON_ARGS, name=daemon.shm_name)
    restarted.http_port = daemon.http_port
    restarted.start()
    wait_status(page, "connected")
    page.wait_for_selector(".app[data-stale=false]")
    seq_before = page.get_by_test_id("chain-seq").inner_text()
    page.wait_for_function(
        "(s) => document.querySelector('[data-testid=chain-seq]').innerText !== s",
        arg=seq_before,
    )
    page.wait_for_function(
        "document.querySelectorAll('[data-testid=chain-body] [role=row]').length >= 20"
    )


def test_api_key_from_the_address_bar(browser, daemon_factory):
    key = "ui-test-key-7f3a"
    daemon = daemon_factory(DAEMON_ARGS, env={"FLASHALPHA_API_KEYS": key}).start()
    with open_page(browser, daemon) as ui_page:
        page = ui_page.page
        # Without a key the page loads (it is not under /api) and says what is missing.
        ui_page.goto("/chain/SPY")
        assert "requires an API key" in page.get_by_test_id("key-required").inner_text()
        # ?api_key= is taken, removed from the address bar and kept for later visits.
        ui_page.goto(f"/chain/SPY?api_key={key}")
        page.wait_for_url(re.compile(r"/chain/SPY$"))
        wait_status(page, "connected")
        page.wait_for_function(
            "document.querySelectorAll('[data-testid=chain-body] [role=row]').length >= 20"
        )
        page.reload()
        wait_status(page, "connected")
        page.wait_for_function(
            "document.querySelectorAll('[data-testid=chain-body] [role=row]').length >= 20"
        )
