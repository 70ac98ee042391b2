"""Reopen refuses what it must, through the command line: a blank reason, a month when nothing is
closed, a month that is not the most recently closed one, a malformed month. Each is one line on
stderr and its exit code, and the periods and their events read back unchanged."""

from __future__ import annotations

import pytest

from db import readback
from flows import cli
from tests.flows.test_flows import NOW, _platform

PERIOD_TABLES = ["mlm_periods", "mlm_period_events", "mlm_period_snapshots", "monthly_stats", "mlm_runs"]


@pytest.fixture
def platform(db, monkeypatch):
    return _platform(db, monkeypatch)


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def _refused(db, capsys, argv: list[str], code: int, line: str) -> None:
    before = readback.table_fingerprints(db, PERIOD_TABLES)
    assert cli.main(argv) == code
    assert _one_line(capsys) == line
    assert readback.table_fingerprints(db, PERIOD_TABLES) == before


def test_reopening_when_nothing_is_closed_is_refused(platform, capsys):
    _refused(platform, capsys, ["reopen", "--month", "2025-09", "--reason", "late refund"], cli.EXIT_BAD_INPUT,
             "mlm-recompute: refused: 2025-09 is not closed: no month is closed")


def test_a_blank_reason_is_refused_and_the_month_stays_closed(platform, capsys, prefect_server):
    from flows.periods import close

    close("2025-09", now=NOW)
    capsys.readouterr()
    for reason in ("", "   ", "\t\n"):
        _refused(platform, capsys, ["reopen", "--month", "2025-09", "--reason", reason], cli.EXIT_BAD_INPUT,
                 "mlm-recompute: refused: reopening needs a reason (--reason)")
    with platform.connect_raw() as c:
        assert c.execute("SELECT period, is_closed FROM mlm_periods").fetchall() == [("2025-09", True)]
        assert c.execute("SELECT event FROM mlm_period_events").fetchall() == [("closed",)]


def test_only_the_newest_closed_month_reopens_and_a_reopened_month_is_not_closed(platform, capsys):
    with platform.connect_raw() as c:  # two closed months (what closing them records; their closes are tested elsewhere)
        c.execute("INSERT INTO mlm_periods (period, is_closed) VALUES ('2025-08', true), ('2025-09', true)")
    _refused(platform, capsys, ["reopen", "--month", "2025-08", "--reason", "late refund"], cli.EXIT_BAD_INPUT,
             "mlm-recompute: refused: only the most recently closed month (2025-09) can be reopened, not 2025-08")
    _refused(platform, capsys, ["reopen", "--month", "2025-10", "--reason", "late refund"], cli.EXIT_BAD_INPUT,
             "mlm-recompute: refused: only the most recently closed month (2025-09) can be reopened, not 2025-10")
    assert cli.main(["reopen", "--month", "2025-09", "--reason", "late refund"]) == cli.EXIT_OK
    assert capsys.readouterr().out.strip() == "reopened 2025-09: late refund"
    with platform.connect_raw() as c:
        assert c.execute("SELECT period, is_closed FROM mlm_periods ORDER BY 1").fetchall() == [("2025-08", True), ("2025-09", False)]
        assert c.execute("SELECT period, event, reason FROM mlm_period_events").fetchall() == [("2025-09", "reopened", "late refund")]
    # reopened: 2025-08 is now the newest closed month, so 2025-09 is refused
    _refused(platform, capsys, ["reopen", "--month", "2025-09", "--reason", "again"], cli.EXIT_BAD_INPUT,
             "mlm-recompute: refused: only the most recently closed month (2025-08) can be reopened, not 2025-09")


@pytest.mark.parametrize("month", ["2025-13", "2025-9", "September"])
def test_a_malformed_month_is_a_usage_error(platform, capsys, month):
    _refused(platform, capsys, ["reopen", "--month", month, "--reason", "late refund"], cli.EXIT_USAGE,
             f"mlm-recompute: error: not a month: {month!r}; write it as YYYY-MM, e.g. 2025-10")
