"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright against a
real teacher service that is being fed while the pages are open.

Checks the experiment list, the live page of ALP-GMM (2-D and 3-D box spaces) and PLR
(level space): charts drawn with data, GMM ellipses once a mixture is fitted, live
updates arriving, evaluation curves, level images and the score histogram, the token
prompt, Export, and reconnection after a server restart. Every page must log no console
error and request nothing outside 127.0.0.1 (the dashboard works offline).

Screenshots go to ``test-artifacts/dashboard/`` at the repo root (or
``$AUTOCURRICULUM_ARTIFACTS/dashboard/``); with ``AUTOCURRICULUM_UPDATE_DOCS=1`` the ALP-GMM
live page is also copied to ``docs/dashboard.png``.

Needs ``/usr/bin/chromium`` (Debian package ``chromium``) and the ``playwright`` Python
package (the ``dev`` extra); never ``playwright install``. Without them the module is
skipped, unless ``AUTOCURRICULUM_REQUIRE_BROWSER=1`` (CI), which makes that a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from teacher_service.client import TeacherClient
from teacher_service.testing import ServerProcess
from tests.dashboard_feed import FAST_POET, POET_LEVEL_SPACE, Feeder, feed_poet

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("AUTOCURRICULUM_CHROMIUM", "/usr/bin/chromium"))
REQUIRE = os.environ.get("AUTOCURRICULUM_REQUIRE_BROWSER") == "1"
ARTIFACTS = Path(os.environ.get("AUTOCURRICULUM_ARTIFACTS") or REPO / "test-artifacts")
ARTIFACTS /= "dashboard"
TOKEN = "dash+token/123="  # "+" and "/" as in base64 tokens
#: Debian's Chromium, headless, with every background service that could phone home off.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Playwright waits (ms): generous for a loaded 2-core CI machine, still bounded.
WAIT = 20_000

pytestmark = pytest.mark.timeout(240)


def _browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is missing (pip install -e '.[dev]')"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (Debian: apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module."""
    reason = _browser_missing()
    if reason:
        if REQUIRE:
            pytest.fail(f"AUTOCURRICULUM_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield b
    b.close()
    pw.stop()


@dataclass
class Service:
    """The fed server of the module and the ids of its experiments."""

    server: ServerProcess
    feeder: Feeder
    ids: dict[str, str]

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def service(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A server with a token, three experiments, fed from a background thread throughout.

    Depends on ``browser`` so that nothing starts when the module is skipped."""
    tmp = tmp_path_factory.mktemp("dashboard")
    srv = ServerProcess(
        f"sqlite:///{tmp / 'dash.db'}", token=TOKEN, log_path=tmp / "server.log"
    ).start()
    feeder = Feeder(srv.url, TOKEN, batch=8, pause=0.1)
    ids = {
        "alp2d": feeder.add_box("alp2d", 2),
        "alp3d": feeder.add_box("alp3d", 3),
        "plr": feeder.add_level("plr"),
    }
    # Past ALP-GMM's bootstrap (40 episodes) before any page opens: a mixture is fitted.
    feeder.run(12)
    feeder.start()
    yield Service(srv, feeder, ids)
    try:
        feeder.stop()
    finally:
        srv.stop()


@dataclass
class Tab:
    """A page in its own browser context, with what it logged and tried to reach."""

    page: Any
    errors: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)

    def assert_clean(self, allow: str | None = None) -> None:
        """No console error (except messages matching ``allow``) and no request that left
        127.0.0.1."""
        errors = [e for e in self.errors if not (allow and re.search(allow, e))]
        assert errors == [], f"console errors: {errors}"
        assert self.external == [], f"requests outside 127.0.0.1: {self.external}"


@pytest.fixture
def tab(browser: Any) -> Iterator[Tab]:
    """A fresh context (empty sessionStorage) whose requests may only go to 127.0.0.1."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    t = Tab(page)

    def only_loopback(route: Any) -> None:
        url = route.request.url
        if urlsplit(url).hostname == "127.0.0.1":
            route.continue_()
        else:
            t.external.append(url)
            route.abort()

    context.route("**/*", only_loopback)
    page.on("console", lambda m: t.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: t.errors.append(f"uncaught: {e}"))
    yield t
    context.close()


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def seq_of(page: Any) -> int:
    return int(page.get_by_test_id("live-status").get_attribute("data-seq") or -1)


def wait_seq_above(page: Any, seq: int) -> None:
    """Wait until a frame newer than ``seq`` arrived (and was drawn)."""
    page.wait_for_function(
        """s => Number(document.querySelector('[data-testid=live-status]').dataset.seq) > s
               && Number(document.getElementById('live-view').dataset.seq) > s""",
        arg=seq,
        timeout=WAIT,
    )


def wait_count(page: Any, selector: str, at_least: int = 1) -> int:
    """Wait until ``selector`` matches at least ``at_least`` elements; return the count."""
    page.wait_for_function(
        "([sel, n]) => document.querySelectorAll(sel).length >= n",
        arg=[selector, at_least],
        timeout=WAIT,
    )
    return page.locator(selector).count()


def open_live(tab: Tab, service: Service, name: str) -> Any:
    """Open an experiment's live page (token in the fragment) and wait for the first frame."""
    page = tab.page
    page.goto(f"{service.url}/?exp={service.ids[name]}#token={TOKEN}")
    page.wait_for_function(
        "() => document.getElementById('live-view').dataset.seq !== undefined", timeout=WAIT
    )
    return page


# --------------------------------------------------------------------------- the list
def test_list_page_lists_the_experiments_and_links_to_live_pages(
    tab: Tab, service: Service
) -> None:
    page = tab.page
    page.goto(f"{service.url}/#token={TOKEN}")
    rows = page.get_by_test_id("experiment-row")
    rows.nth(2).wait_for(timeout=WAIT)
    kinds = {
        rows.nth(i).get_attribute("data-name"): (
            rows.nth(i).get_by_test_id("experiment-teacher-kind").inner_text(),
            rows.nth(i).get_by_test_id("experiment-space-kind").inner_text(),
        )
        for i in range(rows.count())
    }
    assert {"alp2d", "alp3d", "plr"} <= set(kinds)  # (other tests may add experiments)
    assert kinds["alp2d"][0] == "alp_gmm" and kinds["alp2d"][1].startswith("box · 2d")
    assert kinds["alp3d"][1].startswith("box · 3d")
    assert kinds["plr"][0] == "plr" and kinds["plr"][1].startswith("level · minigrid")
    # the token left the address bar at once, and lives in this tab's sessionStorage only
    assert "token" not in page.url
    assert page.evaluate("sessionStorage.getItem('autocurriculum.token')") == TOKEN
    screenshot(page, "list")
    # the link opens the live page, which still has the token (sessionStorage)
    page.locator("[data-name=alp2d] [data-testid=experiment-link]").click()
    page.get_by_test_id("experiment-title").filter(has_text="alp2d").wait_for(timeout=WAIT)
    assert page.url.endswith(f"?exp={service.ids['alp2d']}")
    tab.assert_clean()


def test_list_drops_a_deleted_experiment(tab: Tab, service: Service) -> None:
    page = tab.page
    box = {"kind": "box", "dims": [{"name": "x", "low": 0.0, "high": 1.0}]}
    with httpx.Client(
        base_url=service.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    ) as c:
        r = c.post(
            "/v1/experiments", json={"name": "doomed", "space": box, "teacher": {"kind": "random"}}
        )
        assert r.status_code == 201, r.text
        page.goto(f"{service.url}/#token={TOKEN}")
        doomed = page.locator("[data-testid=experiment-row][data-name=doomed]")
        doomed.wait_for(timeout=WAIT)
        assert c.delete("/v1/experiments/doomed").status_code == 204
        doomed.wait_for(state="detached", timeout=WAIT)  # the list is polled
    assert page.locator("[data-testid=experiment-row][data-name=alp2d]").count() == 1
    tab.assert_clean()


# ----------------------------------------------------------------- box: ALP-GMM 2-D
def test_alp_gmm_live_page_draws_curves_gmm_and_updates_live(tab: Tab, service: Service) -> None:
    page = open_live(tab, service, "alp2d")
    assert page.get_by_test_id("experiment-teacher").inner_text() == "alp_gmm"

    # training return: one path per series, with points
    wait_count(page, "[data-testid=return-chart] path.series[data-series='mean return']")
    page.wait_for_function(
        """() => Number(document.querySelector(
            "[data-testid=return-chart] path[data-series='mean return']").dataset.points) >= 5""",
        timeout=WAIT,
    )
    assert page.locator("[data-testid=return-chart] path[data-series='success rate']").count() == 1

    # GMM: fitted after the bootstrap, drawn as ellipses over the recent tasks
    wait_count(page, "[data-testid=gmm-ellipse]")
    # one ellipse per component of the table (read at once: both change at a refit)
    n_ellipses, n_rows = page.evaluate(
        """() => [document.querySelectorAll('[data-testid=gmm-ellipse]').length,
                  document.querySelectorAll('[data-testid=gmm-components] tr').length]"""
    )
    assert n_ellipses == n_rows - 1 >= 1
    assert page.locator("[data-testid=gmm-chart] .points circle").count() > 10
    assert "fit(s)" in page.get_by_test_id("gmm-status").inner_text()
    # 2-D space: nothing to choose
    assert page.get_by_test_id("dim-x").count() == 0

    # held-out evaluations: one line per maze, x = env steps
    wait_count(page, "[data-testid=solve-rate-chart] path.series", 3)
    assert "training env steps" in page.get_by_test_id("solve-rate-chart").inner_text()

    # live: newer frames arrive, the counters grow, the feed shows as throughput
    seq0 = seq_of(page)
    reports0 = int(page.get_by_test_id("counter-reports").get_attribute("data-value"))
    wait_seq_above(page, seq0)
    page.wait_for_function(
        "r => Number(document.querySelector('[data-testid=counter-reports]').dataset.value) > r",
        arg=reports0,
        timeout=WAIT,
    )
    assert float(page.get_by_test_id("throughput-reports").get_attribute("data-value")) > 0
    assert page.get_by_test_id("live-status").get_attribute("data-state") == "live"
    assert page.get_by_test_id("hp-fit_rate").inner_text() == "40"

    # the DOM stays small: charts are rebuilt, never appended to
    n_nodes = page.evaluate("document.getElementsByTagName('*').length")
    print(f"alp_gmm live page: {n_nodes} DOM elements")
    assert n_nodes < 3000

    shot = screenshot(page, "live-alp_gmm")
    if os.environ.get("AUTOCURRICULUM_UPDATE_DOCS") == "1":
        (REPO / "docs").mkdir(exist_ok=True)
        shutil.copyfile(shot, REPO / "docs" / "dashboard.png")
    tab.assert_clean()


def test_three_dims_offer_dim_selects(tab: Tab, service: Service) -> None:
    page = open_live(tab, service, "alp3d")
    wait_count(page, "[data-testid=gmm-ellipse]")
    x, y = page.get_by_test_id("dim-x"), page.get_by_test_id("dim-y")
    assert x.locator("option").all_inner_texts() == ["x", "y", "z0"]
    assert (x.input_value(), y.input_value()) == ("0", "1")
    y.select_option(label="z0")
    # redrawn at once with z0 (bounds [0, 1]) on the y axis; the selection survives updates
    page.locator("[data-testid=gmm-chart] text.label", has_text="z0").wait_for(timeout=WAIT)
    wait_seq_above(page, seq_of(page))
    assert y.input_value() == "2"
    assert page.locator("[data-testid=gmm-chart] text.label", has_text="z0").count() == 1
    assert page.locator("[data-testid=gmm-ellipse]").count() >= 1
    screenshot(page, "live-alp_gmm-3d")
    tab.assert_clean()


# ---------------------------------------------------------------------- levels: PLR
def test_plr_live_page_draws_buffer_histogram_and_levels(tab: Tab, service: Service) -> None:
    page = open_live(tab, service, "plr")
    wait_count(page, "[data-testid=level-image]")
    # the top levels as images: walls drawn, the level's own size (9 x 9)
    img = page.get_by_test_id("level-image").first
    assert img.get_attribute("data-width") == "9" and img.get_attribute("data-height") == "9"
    assert img.locator("rect").count() > 3
    assert page.get_by_test_id("level-image").count() <= 5
    # the score histogram counts every level of the buffer
    wait_count(page, "[data-testid=score-histogram] rect.bar")
    counts = page.locator("[data-testid=score-histogram] rect.bar").evaluate_all(
        "bars => bars.map(b => Number(b.dataset.count))"
    )
    size = int(page.get_by_test_id("buffer-fill").inner_text().split("/")[0])
    assert sum(counts) == size > 0
    assert re.fullmatch(r"\d+(\.\d+)?%", page.get_by_test_id("replay-rate").inner_text())
    assert re.fullmatch(r"\d+(\.\d+)?%", page.get_by_test_id("replay-step-share").inner_text())
    wait_count(page, "[data-testid=solve-rate-chart] path.series", 3)
    wait_seq_above(page, seq_of(page))
    screenshot(page, "live-plr")
    tab.assert_clean()


# ------------------------------------------------------------- the other teachers
@pytest.mark.parametrize(
    ("kind", "teacher", "space", "mark"),
    [
        (
            "covar_gmm",
            {"kind": "covar_gmm", "bootstrap": 40, "fit_rate": 40, "fit_delay": 0, "max_k": 3},
            "box",
            "gmm-ellipse",
        ),
        ("riac", {"kind": "riac", "max_region_size": 20}, "box", "region-rect"),
        ("lp_tree", {"kind": "lp_tree"}, "box", "region-rect"),
        (
            "accel",
            {"kind": "accel", "buffer_size": 16, "edit_batch": 4, "edit_parents": 2},
            "level",
            "level-image",
        ),
        ("paired", {"kind": "paired", "update_every": 2}, "level", "level-image"),
        # domain randomisation has no picture of its own: the recent levels are its view
        ("random", {"kind": "random"}, "level", "recent-level"),
        ("lp", {"kind": "lp", "eval_episodes": 1, "eval_interval": 8}, "discrete", "task-table"),
        ("sec", {"kind": "sec", "batch_episodes": 8}, "discrete", "task-table"),
        (
            "omni",
            {"kind": "omni", "model": "tfidf", "eval_episodes": 1, "eval_interval": 8},
            "discrete",
            "task-table",
        ),
    ],
)
def test_each_teacher_kind_draws_its_own_view(
    tab: Tab, service: Service, kind: str, teacher: dict, space: str, mark: str
) -> None:
    """Every teacher's panel renders from its real view (fed before the page opens)."""
    # lp_tree's evaluations say no env steps: its solve rates are plotted against time
    with Feeder(service.url, TOKEN, batch=8, env_steps=kind != "lp_tree") as feeder:
        add = {"box": feeder.add_box, "level": feeder.add_level, "discrete": feeder.add_discrete}
        service.ids[kind] = add[space](f"kind-{kind}", teacher=teacher)
        feeder.run(10)
    page = open_live(tab, service, kind)
    assert page.get_by_test_id("experiment-teacher").inner_text() == kind
    wait_count(page, f"[data-testid={mark}]")
    page.get_by_test_id("teacher-summary").filter(has_text="episodes").or_(
        page.get_by_test_id("teacher-summary").filter(has_text="levels_built")
    ).wait_for(timeout=WAIT)
    wait_count(page, "[data-testid=solve-rate-chart] path.series", 3)
    x_label = "time since first result" if kind == "lp_tree" else "training env steps"
    assert x_label in page.get_by_test_id("solve-rate-chart").inner_text()
    if kind == "paired":
        wait_count(page, "[data-testid=regret-chart] path.series:not([data-points='0'])")
        wait_count(page, "[data-testid=goal-heatmap] rect", 2)
        assert float(page.get_by_test_id("mean-regret").inner_text()) > 0
    if kind == "accel":
        wait_count(page, "[data-testid=score-histogram] rect.bar")
    if space == "level":  # every level-space teacher: the last 8 levels issued, newest first
        wait_count(page, "[data-testid=recent-level]", 8)
        widths = page.locator("[data-testid=recent-level-image]").evaluate_all(
            "nodes => nodes.map((n) => Number(n.dataset.width))"
        )
        assert len(widths) == 8 and min(widths) >= 5  # drawn levels, border included
    else:
        assert page.get_by_test_id("recent-levels").is_hidden()
    if space == "discrete":  # a row per task of the tree (3 families x 2, 1 impossible)
        wait_count(page, "[data-testid=task-table] tr[data-task]", 7)
        assert page.locator("[data-testid=task-table] tr[data-task='skill0']").count() == 1
    if kind == "omni":  # the variants of a skill are set aside, and the row says why
        boring = page.locator("[data-testid=task-table] tr[data-interesting='false']")
        wait_count(page, "[data-testid=task-table] tr[data-interesting='false']")
        assert "not interesting given skill" in boring.first.get_attribute("title")
    screenshot(page, f"live-{kind}")
    tab.assert_clean()


# ------------------------------------------------------------------------ the token
def test_token_prompt_appears_without_a_token_and_data_loads_after(
    tab: Tab, service: Service
) -> None:
    page = tab.page
    page.goto(f"{service.url}/?exp={service.ids['alp2d']}")
    page.get_by_test_id("token-prompt").wait_for(state="visible", timeout=WAIT)
    assert page.get_by_test_id("live-status").get_attribute("data-state") == "unauthorised"
    # a wrong token is refused and said so
    page.get_by_test_id("token-input").fill("wrong")
    page.get_by_test_id("token-submit").click()
    page.get_by_test_id("token-error").wait_for(state="visible", timeout=WAIT)
    screenshot(page, "token-prompt")
    page.get_by_test_id("token-input").fill(TOKEN)
    page.get_by_test_id("token-submit").click()
    page.get_by_test_id("token-prompt").wait_for(state="hidden", timeout=WAIT)
    page.wait_for_function(
        "() => Number(document.querySelector('[data-testid=counter-reports]').dataset.value) > 0",
        timeout=WAIT,
    )
    assert page.get_by_test_id("live-status").get_attribute("data-state") == "live"
    # the browser logs each 401 answer as a failed resource load: those are expected here
    tab.assert_clean(allow=r"status of 401")


# --------------------------------------------------------------------------- export
def test_export_downloads_the_history_as_json_lines(tab: Tab, service: Service) -> None:
    probe = httpx.get(
        f"{service.url}/v1/experiments/alp2d/export",
        params={"format": "jsonl"},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )
    assert probe.status_code == 200, (
        f"GET /v1/experiments/alp2d/export answered {probe.status_code}: {probe.text[:300]}"
    )
    page = open_live(tab, service, "alp2d")
    with page.expect_download(timeout=WAIT) as dl:
        page.get_by_test_id("export-button").click()
    download = dl.value
    assert download.suggested_filename == "alp2d.jsonl"
    lines = Path(download.path()).read_text().splitlines()
    assert len(lines) > 10
    json.loads(lines[0])
    page.get_by_test_id("export-status").filter(has_text="exported").wait_for(timeout=WAIT)
    tab.assert_clean()


# ------------------------------------------------------------------------ reconnect
def test_page_reconnects_after_the_server_restarts(tab: Tab, tmp_path: Path) -> None:
    """A server of its own (no token), killed and restarted under the open page."""
    srv = ServerProcess(f"sqlite:///{tmp_path / 'r.db'}", log_path=tmp_path / "r.log").start()
    try:
        feeder = Feeder(srv.url, batch=4)
        exp = feeder.add_box("restart", 2, teacher={"kind": "random"})
        feeder.run(3)
        page = tab.page
        page.goto(f"{srv.url}/?exp={exp}")
        page.wait_for_function(
            "() => document.querySelector('[data-testid=live-status]').dataset.state === 'live'",
            timeout=WAIT,
        )
        seq0 = seq_of(page)
        # teacher kinds without a picture of their own show their view as a table
        page.get_by_test_id("teacher-summary").filter(has_text="episodes").wait_for(timeout=WAIT)

        srv.kill()
        page.wait_for_function(
            """() => ['reconnecting', 'connecting'].includes(
                   document.querySelector('[data-testid=live-status]').dataset.state)""",
            timeout=WAIT,
        )
        t0 = time.monotonic()
        srv.start()
        feeder.run(2)
        wait_seq_above(page, seq0)
        assert page.get_by_test_id("live-status").get_attribute("data-state") == "live"
        assert time.monotonic() - t0 < WAIT / 1000
        feeder.client.close()
    finally:
        srv.stop()
    # the browser logs the refused connections while the server was down
    tab.assert_clean(allow=r"Failed to load resource: net::ERR_")


# ------------------------------------------------------------------ JS helpers, in situ
JS_UNITS = r"""async () => {
  const { readEvents } = await import("./dashboard/static/sse.js");
  const charts = await import("./dashboard/static/charts.js");
  // an event stream cut at every byte count: CRLF, CR and LF line ends, a comment,
  // a two-line data field, a UTF-8 character split across chunks, an unfinished event
  const text = ": keep-alive\r\n\r\n" +
    "event: frame\r\nid: 7\r\ndata: {\"a\":1}\r\n\r\n" +
    "data: x\ndata: y\n\nevent: frame\rdata: \u00e9\r\rdata: unfinished";
  const bytes = new TextEncoder().encode(text);
  const parses = [];
  for (const size of [1, 2, 3, 7, bytes.length]) {
    const chunks = [];
    for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.slice(i, i + size));
    let i = 0;
    const reader = { read: async () => (i < chunks.length
      ? { value: chunks[i++], done: false } : { value: undefined, done: true }) };
    const events = [];
    await readEvents(reader, (e) => events.push(e));
    parses.push(events);
  }
  return {
    parses,
    // 2-sigma ellipses of diagonal and correlated covariances (pixel units)
    wide: charts.ellipseOf(4, 0, 1),
    tall: charts.ellipseOf(1, 0, 4),
    diagonal: charts.ellipseOf(2, 1, 2),
    ticks: charts.niceTicks(0, 1, 5),
    formats: [200000, 1500000, 0.25, 12, null].map((v) => charts.fmt(v)),
    level: charts.levelImage("#####\n#>.G#\n#####").getAttribute("data-width"),
  };
}"""


def test_js_helpers_parse_chunked_streams_and_draw_right(tab: Tab, service: Service) -> None:
    """The SSE parser and chart maths, run in the browser on the served modules."""
    page = tab.page
    page.goto(f"{service.url}/#token={TOKEN}")
    out = page.evaluate(JS_UNITS)
    want = [
        {"event": "frame", "id": "7", "data": '{"a":1}'},
        {"event": "message", "id": "7", "data": "x\ny"},
        {"event": "frame", "id": "7", "data": "\u00e9"},
    ]
    assert all(p == want for p in out["parses"]), out["parses"]
    assert out["wide"] == {"rx": 4, "ry": 2, "angle": 0}
    assert out["tall"]["rx"] == 4 and out["tall"]["ry"] == 2 and out["tall"]["angle"] == 90
    d = out["diagonal"]  # eigenvalues 3 and 1, major axis at 45 degrees
    assert abs(d["rx"] - 2 * 3**0.5) < 1e-9 and abs(d["ry"] - 2) < 1e-9
    assert abs(d["angle"] - 45) < 1e-9
    assert out["ticks"] == [0, 0.2, 0.4, 0.6, 0.8, 1]
    assert out["formats"] == ["200k", "1.5M", "0.25", "12", "\u2013"]  # en dash: no value
    assert out["level"] == "5"
    tab.assert_clean()


# ------------------------------------------------------------------------------ POET
#: What the page shows for a missing value (an en dash).
DASH = "\u2013"
#: A 7 x 7 level (the MiniGrid ASCII encoding of env_generators/levels.py).
POET_LEVEL = "#######\n#>....#\n#.##..#\n#..#..#\n#..L..#\n#....G#\n#######"


def _poet_pair(env_id: int, agent: str, **kw: Any) -> dict[str, Any]:
    pair = {
        "env_id": env_id,
        "agent_id": agent,
        "init_from": None,
        "level": POET_LEVEL,
        "params": None,
        "score": 0.5,
        "evaluations": 3,
        "born": 0,
        "age": 4,
        "parent": None,
        "agent_since": 0,
    }
    return pair | kw


#: A teacher view in the shape of the poet protocol's "Teacher view" (hand-written): an
#: agent id with markup checks that the page inserts text, never HTML.
POET_VIEW = {
    "iteration": 9,
    "annecs": 2,
    "annecs_history": [[0, 0], [4, 1], [8, 2]],
    "pairs": [
        _poet_pair(0, "agent-3", init_from="agent-0", agent_since=6, age=9),
        _poet_pair(2, "<img src=x onerror=alert(1)>", parent=0, born=4, age=5, score=None),
        _poet_pair(
            3,
            "agent-4",
            init_from="agent-0",
            parent=0,
            born=8,
            age=1,
            score=0.25,
            params={"walls": 0.25},  # a box space's pair: its parameters are shown too
        ),
    ],
    "archived": [_poet_pair(1, "agent-1", parent=0, born=4, age=4)],
    "archived_count": 1,
    "archive_size": 4,
    "transfers": [
        {
            "iteration": 6,
            "env_id": 0,
            "from_agent": "agent-1",
            "agent_id": "agent-3",
            "score": 0.75,
            "incumbent": 0.5,
        }
    ],
    "transfer_count": 1,
    "admitted": 3,
    "children": {"made": 7, "duplicates": 1, "mc_passed": 4, "mc_failed": 2, "not_admitted": 1},
    "agents": {
        "active": ["agent-3", "agent-2", "agent-4"],
        "candidates": ["agent-5"],
        "archived": ["agent-1"],
    },
    "checks": {"transfer": "fine_tune", "reproduction": "idle"},
    "mc": [0.0, 1.0],
}


def _fake_frame(exp: str, teacher: dict[str, Any], seq: int = 5) -> str:
    """A dashboard frame for a made-up poet experiment, as a server-sent event."""
    frame = {
        "id": exp,
        "name": exp,
        "teacher_kind": "poet",
        "space": {"kind": "level", "generator": "minigrid", "config": {"size": 7}},
        "hyperparameters": {"kind": "poet"},
        "seq": seq,
        "time": time.time(),
        "counters": {
            "tasks_issued": 10,
            "reports_accepted": 10,
            "outstanding": 0,
            "expired": 0,
            "duplicates": 0,
            "late_reports": 0,
            "events": seq,
        },
        "throughput": {"tasks_per_s": 0.0, "reports_per_s": 0.0, "window_s": 30.0},
        "progress": {},
        "evaluations": [],
        "teacher": teacher,
        "recent_levels": [],
        "max_points": 300,
    }
    return f"event: frame\nid: {seq}\ndata: {json.dumps(frame)}\n\n"


def _open_fake_poet(tab: Tab, service: Service, exp: str, teacher: dict[str, Any]) -> Any:
    """The live page of a made-up experiment whose stream answers one frame with ``teacher``
    (the page's own modules come from the real server)."""
    page = tab.page
    page.route(
        f"**/v1/experiments/{exp}/events*",
        lambda route: route.fulfill(
            status=200,
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"},
            body=_fake_frame(exp, teacher),
        ),
    )
    page.goto(f"{service.url}/?exp={exp}#token={TOKEN}")
    page.wait_for_function(
        "() => document.getElementById('live-view').dataset.seq !== undefined", timeout=WAIT
    )
    return page


def test_poet_panel_draws_a_spec_shaped_view(tab: Tab, service: Service) -> None:
    """The POET panel against a hand-written view of the protocol: pairs with their levels,
    transfers, counters, the ANNECS steps; inserted text stays text."""
    page = _open_fake_poet(tab, service, "poet-fake", POET_VIEW)
    cards = page.get_by_test_id("poet-pair")
    assert cards.count() == 3
    assert cards.evaluate_all("cs => cs.map(c => c.dataset.envId)") == ["0", "2", "3"]
    assert page.get_by_test_id("poet-pair-level").count() == 3
    img = page.get_by_test_id("poet-pair-level").first
    assert img.get_attribute("data-width") == "7" and img.locator("rect").count() > 3
    first = cards.nth(0).inner_text()
    assert "env 0" in first and "agent-3" in first and "from agent-0" in first
    assert "agent since it 6" in first and "age 9" in first and "score 0.5" in first
    assert "parent env 0" in cards.nth(2).inner_text()
    assert "walls 0.25" in cards.nth(2).inner_text()
    # an agent id with markup is shown as text
    assert cards.nth(1).get_by_test_id("poet-pair-agent").inner_text() == (
        "<img src=x onerror=alert(1)>"
    )
    assert page.locator("[data-testid=poet-panel] img").count() == 0
    assert f"score {DASH}" in cards.nth(1).inner_text()  # no self-evaluation yet
    # archived pairs, transfers
    assert page.get_by_test_id("poet-archived-pair").count() == 1
    rows = page.get_by_test_id("poet-transfer")
    assert rows.count() == 1
    assert rows.first.inner_text().split("\t") == ["6", "env 0", "agent-1 → agent-3", "0.75 vs 0.5"]
    # counters
    want = {
        "poet-iteration": "9",
        "poet-annecs": "2",
        "poet-active": "3",
        "poet-archive-size": "4",
        "poet-archived-count": "1",
        "poet-admitted": "3",
        "poet-transfer-count": "1",
        "poet-check-transfer": "fine_tune",
        "poet-check-reproduction": "idle",
        "poet-candidates": "1",
        "poet-mc": "[0, 1]",
        "poet-children-made": "7",
        "poet-children-duplicates": "1",
        "poet-children-mc-passed": "4",
        "poet-children-mc-failed": "2",
        "poet-children-not-admitted": "1",
    }
    got = {k: page.get_by_test_id(k).inner_text() for k in want}
    assert got == want
    # ANNECS: steps at 4 and 8, held flat to the current iteration (9)
    path = page.locator("[data-testid=annecs-chart] path.series[data-series=ANNECS]")
    assert path.get_attribute("data-points") == "6"
    screenshot(page, "poet-fake")
    tab.assert_clean()


def test_poet_panel_degrades_on_a_partial_view(tab: Tab, service: Service) -> None:
    """A view without pairs, history, transfers or counters draws dashes and notes, no error."""
    page = _open_fake_poet(
        tab, service, "poet-partial", {"iteration": 0, "pairs": None, "children": None, "mc": "?"}
    )
    panel = page.get_by_test_id("poet-panel")
    assert "no pairs yet" in panel.get_by_test_id("poet-pairs").inner_text()
    assert page.get_by_test_id("poet-pair").count() == 0
    assert page.get_by_test_id("poet-active").inner_text() == "0"
    assert page.get_by_test_id("poet-annecs").inner_text() == DASH
    assert page.get_by_test_id("poet-children-made").inner_text() == DASH
    assert page.get_by_test_id("poet-mc").inner_text() == DASH
    assert "no transfer yet" in page.get_by_test_id("poet-transfers").inner_text()
    assert "no iteration yet" in page.get_by_test_id("annecs-chart").inner_text()
    assert page.get_by_test_id("poet-archived").is_hidden()
    tab.assert_clean()


def _poet_grown(view: dict[str, Any]) -> bool:
    """More than one active pair (so an admission happened), and a transfer."""
    return len(view.get("pairs") or []) > 1 and (view.get("transfer_count") or 0) > 0


def test_poet_live_page_draws_pairs_annecs_and_counters(tab: Tab, service: Service) -> None:
    """A real poet experiment, driven over HTTP until it has several pairs, then its page:
    one card per active pair with its level drawn, the ANNECS chart, the counters, and a
    live update as the driving goes on."""
    with TeacherClient(service.url, token=TOKEN, timeout=30.0) as client:
        exp = client.create_experiment(
            "poet-live", space=POET_LEVEL_SPACE, teacher=FAST_POET, seed=2
        ).id
        service.ids["poet"] = exp
        view = feed_poet(client, exp, _poet_grown)
        page = open_live(tab, service, "poet")
        assert page.get_by_test_id("experiment-teacher").inner_text() == "poet"
        # the page draws the view of the latest frame: the same as /state (nothing is fed now)
        page.wait_for_function(
            "n => document.querySelectorAll('[data-testid=poet-pair]').length === n",
            arg=len(view["pairs"]),
            timeout=WAIT,
        )
        cards = page.get_by_test_id("poet-pair")
        assert cards.evaluate_all("cs => cs.map(c => Number(c.dataset.envId))") == [
            p["env_id"] for p in view["pairs"]
        ]
        assert cards.evaluate_all("cs => cs.map(c => c.dataset.agentId)") == [
            p["agent_id"] for p in view["pairs"]
        ]
        levels = page.get_by_test_id("poet-pair-level")
        assert levels.count() == len(view["pairs"])
        assert set(levels.evaluate_all("ls => ls.map(l => l.dataset.width)")) == {"7"}
        assert levels.first.locator("rect").count() > 3
        for key, testid in [
            ("iteration", "poet-iteration"),
            ("annecs", "poet-annecs"),
            ("archive_size", "poet-archive-size"),
            ("archived_count", "poet-archived-count"),
            ("admitted", "poet-admitted"),
            ("transfer_count", "poet-transfer-count"),
        ]:
            assert page.get_by_test_id(testid).inner_text() == str(view[key]), key
        for key in ["made", "duplicates", "mc_passed", "mc_failed"]:
            testid = f"poet-children-{key.replace('_', '-')}"
            assert page.get_by_test_id(testid).inner_text() == str(view["children"][key]), key
        assert (
            page.get_by_test_id("poet-check-transfer").inner_text() == (view["checks"]["transfer"])
        )
        assert (
            page.get_by_test_id("poet-check-reproduction").inner_text()
            == (view["checks"]["reproduction"])
        )
        rows = page.get_by_test_id("poet-transfer")
        assert rows.count() == len(view["transfers"]) >= 1
        last = view["transfers"][-1]  # newest first on the page
        assert rows.first.inner_text().split("\t")[:3] == [
            str(last["iteration"]),
            f"env {last['env_id']}",
            f"{last['from_agent']} \u2192 {last['agent_id']}",
        ]
        # the recent levels say which agent played them
        wait_count(page, "[data-testid=recent-level]")
        assert "agent-" in page.get_by_test_id("recent-level").first.inner_text()
        # ANNECS over the iterations: a drawn line reaching the current iteration
        annecs = page.locator("[data-testid=annecs-chart] path.series[data-series=ANNECS]")
        assert int(annecs.get_attribute("data-points")) >= 1
        assert "iteration" in page.get_by_test_id("annecs-chart").inner_text()
        # live: the next iterations show up without a reload
        it0 = view["iteration"]
        feed_poet(client, exp, lambda v: v["iteration"] > it0 + 1)
        page.wait_for_function(
            "i => Number(document.querySelector('[data-testid=poet-iteration]').textContent) > i",
            arg=it0,
            timeout=WAIT,
        )
        screenshot(page, "live-poet")
        print(
            f"poet: {len(view['pairs'])} pairs, {view['transfer_count']} transfers, "
            f"{view['admitted']} admitted, iteration {view['iteration']}"
        )
    tab.assert_clean()
