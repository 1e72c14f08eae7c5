"""Each console page in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

The browser reads the same numbers the API and the CLI give: the traits table, the chart's
points against ``traits history --json``, a run's given-up call, a profile against the calls
the receiver accepted. Each page is saved as a screenshot under ``tests/artifacts/``.
Without ``/usr/bin/chromium`` these tests skip, except under ``CI=true`` (``.ci/run``
installs it), where they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI
from tests.console.conftest import REJECTED_USER, DemoConsole, artifacts_dir

CHROMIUM = os.environ.get("TRAITS_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
SERIES = ("rows", "added", "changed", "exited", "sent", "failed")


@pytest.fixture(scope="module")
def browser(demo: DemoConsole) -> Iterator[Any]:
    # after ``demo``: its runs use asyncio.run, which cannot run inside Playwright's event loop
    why = None
    if not Path(CHROMIUM).exists():
        why = f"{CHROMIUM} is missing (apt-get install -y chromium)"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        why = "playwright is not installed (pip install -e '.[dev]')"
    if why is not None:
        if IN_CI:
            pytest.fail(f"CI needs a browser: {why}")
        pytest.skip(why)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1360, "height": 900}, device_scale_factor=1)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda e: errors.append(str(e)))
    try:
        yield tab
    finally:
        context.close()
    assert errors == [], f"JavaScript errors: {errors}"


def shot(page: Any, demo: DemoConsole, name: str) -> Path:
    path = artifacts_dir() / f"console-{name}-{'local' if demo.state == '.traits' else 'postgres'}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000  # a rendered page, not a blank one
    return path


def test_traits_page(page: Any, demo: DemoConsole) -> None:
    page.goto(demo.base + "/")
    rows = page.locator("#traits tr.trait-row")
    assert rows.count() == 3
    names = [rows.nth(i).get_attribute("data-trait") for i in range(3)]
    assert names == ["zendesk_open_tickets", "product_engagement", "account_health"]
    status = {r["trait"]: r for r in demo.cli_json("status")["traits"]}
    for i, name in enumerate(names):
        row = rows.nth(i)
        assert row.locator(".badge").first.inner_text() == status[name]["health"]
        cells = [c.inner_text() for c in row.locator("td.n").all()]
        last = status[name]["last_run"]
        assert cells[:6] == [f"{last[k]:,}" for k in SERIES]
    flagged = page.locator("#traits tr.stands-out")
    assert flagged.count() == 1
    assert flagged.get_attribute("data-trait") == "product_engagement"
    shot(page, demo, "traits")


def test_trait_page_chart_matches_history(page: Any, demo: DemoConsole) -> None:
    page.goto(demo.base + "/traits/product_engagement")
    history = list(reversed(demo.cli_json("history", "product_engagement")["runs"]))
    for series in SERIES:
        points = page.locator(f"svg.chart circle[data-series='{series}']")
        drawn = [(points.nth(i).get_attribute("data-run"), int(points.nth(i).get_attribute("data-value"))) for i in range(points.count())]
        assert drawn == [(r["run_id"], r[series]) for r in history], series
    assert page.locator("svg.chart path.limit.exit_limit").count() == 1  # the guard's limit, where a snapshot existed
    # hovering a run shows its numbers, per destination
    page.locator("svg.chart rect.hover").last.hover()
    tip = page.locator("#chart .tip")
    assert tip.is_visible()
    assert "crm_hook" in tip.inner_text()
    assert history[-1]["run_id"] in tip.inner_text()
    assert "from segment.users u" in page.locator("pre.sql-text").inner_text()
    assert page.locator("#runs tbody tr[data-run]").count() == len(history)
    page.mouse.move(0, 0)
    shot(page, demo, "trait")


def test_run_page_shows_the_given_up_call(page: Any, demo: DemoConsole) -> None:
    run_id = demo.cli_json("history", "product_engagement")["runs"][0]["run_id"]
    page.goto(demo.base + "/traits/product_engagement")
    page.locator(f"#runs a[href='/runs/{run_id}']").click()
    page.wait_for_url(f"**/runs/{run_id}")
    row = page.locator("#given-up tbody tr")
    assert row.count() == 1
    text = row.first.inner_text()
    assert REJECTED_USER in text
    assert "crm_hook" in text
    assert "profile locked" in text
    hook = page.locator("#destinations tr[data-destination='crm_hook']")
    assert "partial" in hook.inner_text()
    assert page.locator("#phases tr").count() == 5
    assert "partial" in page.locator("h1 .badge").inner_text()
    shot(page, demo, "run")


def test_profile_lookup_from_the_search_box(page: Any, demo: DemoConsole) -> None:
    page.goto(demo.base + "/")
    page.fill("form.search input[name=q]", "user_00001")
    page.press("form.search input[name=q]", "Enter")
    page.wait_for_url("**/profiles/user_00001")
    received = demo.receiver.profiles()["user_00001"]
    card = page.locator("section.entry[data-trait='product_engagement'][data-destination='crm_hook']")
    shown = {row.get_attribute("data-key"): row.locator("td code").inner_text() for row in card.locator("tr[data-key]").all()}
    import json

    assert {k: json.loads(v) for k, v in shown.items()} == received
    run_id = demo.cli_json("history", "product_engagement")["runs"][0]["run_id"]
    assert run_id in card.inner_text()
    assert card.locator(".in-last").inner_text() == "sent"
    shot(page, demo, "profile")
