"""The HTML pages (audit, nightly summary, close, compare-plans) in real headless Chromium: each
loads with no console output at all (no error, no failed load) and its charts render."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from flows.config import load_plan
from tests.flows.browser import has_colour, open_page, pixels, require_chromium
from tests.flows.scenario_db import load_scenario
from transforms.recompute import period_of

BARS = (0x34, 0x65, 0xA4)  # flows.html_report.BAR: the first series' bars


def _check(page, tmp_path):
    html = page.read_text(encoding="utf-8")
    assert "src=\"http" not in html and "href=\"http" not in html  # self-contained: nothing fetched
    shot = tmp_path / f"{page.stem}.png"
    console = open_page(page, shot)
    assert console == [], console
    image = pixels(shot)
    assert image.std() > 0.05, "blank screenshot"
    assert has_colour(image, BARS), "no chart bars drawn"


def test_the_browser_check_catches_a_console_error(tmp_path):
    require_chromium()
    page = tmp_path / "bad.html"
    page.write_text('<html><body><p>x</p><script>console.error("boom")</script></body></html>')
    assert any("boom" in line for line in open_page(page, tmp_path / "bad.png"))


@pytest.fixture
def ranks_db(db):
    return db, load_scenario(db, "ranks")


def test_the_pages_open_without_errors_and_draw_their_charts(ranks_db, tmp_path):
    from flows.audit import audit_report
    from flows.compare_plans import compare, compare_files
    from flows.pipeline import run_period
    from flows.report import summary_html, write_summary_page

    require_chromium()
    db, scenario = ranks_db
    plan = load_plan()
    period = period_of(scenario.as_of)
    nightly = run_period(db, plan, as_of=scenario.as_of, period=period, root_telegram_id=scenario.root_telegram_id).summary()
    pages = [write_summary_page(nightly, tmp_path / "nightly")]
    close = {"mode": "close", "run_id": 7, "status": "succeeded", "period": period, "as_of": scenario.as_of.isoformat(),
             "already_closed": False, "snapshot_rows": 15, "changes": nightly["changes"]}  # fmt: skip
    assert "Rank rises" in summary_html(close)
    pages.append(write_summary_page(close, tmp_path / "close"))
    audit = audit_report(db, plan, datetime(2025, 10, 21, tzinfo=timezone.utc), scenario.root_telegram_id, tmp_path / "audit")
    pages.append(tmp_path / "audit" / audit["files"]["html"].rsplit("/", 1)[-1])
    report = compare(db, plan, plan, as_of=scenario.as_of, period=period, root_telegram_id=scenario.root_telegram_id)
    from pathlib import Path

    pages.append(Path(compare_files(report, tmp_path / "compare")["html"]))
    for page in pages:  # four pages, one browser each
        _check(page, tmp_path)
