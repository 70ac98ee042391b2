"""Run reports: Markdown and terminal renderings of a run's summary, and the ledger queries
behind ``mlm-recompute runs`` and ``show``."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from db import ledger
from db.runs_query import failure_count, recent_runs, run_detail, run_failures
from db.scenario_data import insert_platform_rows
from flows.config import load_plan
from flows.pipeline import run_period
from flows.report import WIDTH, changes_table, failure_lines, run_summary, runs_table, summary_lines, summary_markdown

AS_OF = datetime(2025, 10, 20, tzinfo=timezone.utc)

FULL = {
    "run_id": 42,
    "status": "succeeded",
    "period": "2025-10",
    "as_of": "2025-10-20T00:00:00+00:00",
    "dry_run": False,
    "watermark": {"max_purchase_id": 123456, "purchase_count": 98765, "user_count": 10000},
    "users_computed": 10000,
    "users_written": 1234,
    "changes": {
        "users": 1234,
        "by_key": {"mlmStatus.rank": 17, "fullVolume": 1200, "mlmVolumes.monthlyPV": 1200, "isActive": 300},
        "rank_rises_to": {"builder": 12, "growth": 5},
        "full_volume_moved_total": "1234567.50",
        "full_volume_moved_max": "25000.00",
        "personal_volume_moved_total": "98000.25",
    },
    "rank_history_rows": 17,
    "snapshot_rows": 10000,
    "new_pioneers": [5, 7, 11],
    "quarantined": [
        {"kind": "orphan", "ids": [301, 302], "detached_ids": [401, 402, 403], "detail": ""},
        {"kind": "bad_price", "ids": list(range(1000, 1030)), "detached_ids": [], "detail": ""},
    ],
    "verified": True,
    "timings_s": {"extract": 1.25, "compute": 2.5, "load": 3.0, "validate": 0.75, "verify": 0.5},
    "rows": {"extract": 50000, "compute": 10000, "load": 1234},
}

REFUSED = {"problems": [{"kind": "cycle", "ids": [3, 4], "detached_ids": [9], "detail": ""}]}


# --- formatting -------------------------------------------------------------------------------


def test_markdown_of_a_full_summary_has_every_section_and_number():
    text = summary_markdown(FULL)
    assert text.startswith("# Run 42 succeeded\n")
    assert "period **2025-10**, cut-off **2025-10-20 00:00:00 UTC**" in text
    for heading in ["Inputs & watermark", "Users changed", "Changes by key", "Rank changes", "New pioneers", "Quarantined rows", "Validation", "Stage timings"]:
        assert f"\n## {heading}\n" in text
    assert "- purchases before the cut-off: 98,765" in text
    assert "- newest purchaseID: 123456" in text
    assert "- users written: 1,234" in text
    assert "- full volume moved (total): 1,234,567.50" in text
    assert "- personal volume moved (total): 98,000.25" in text
    assert "| fullVolume | 1,200 |" in text and "| mlmStatus.rank | 17 |" in text
    assert "| builder | 12 |" in text and "17 users rose in rank." in text
    assert "3 new: userID 5, 7, 11" in text
    assert "- orphan: 2 userID (301, 302); upline matches no user's telegramID; unreachable below them: userID 401, 402, 403" in text
    assert "1019 and 10 more" in text and "1020" not in text
    assert "verified: stored equals computed" in text
    assert "| extract | 1.250 | 50,000 | 40,000 |" in text  # rows per second
    assert "| validate | 0.750 | - | - |" in text
    assert "| **total** | 8.000 |" in text


def test_changes_table_is_most_users_first_then_by_key():
    assert changes_table(FULL) == [
        {"key": "fullVolume", "users": 1200},
        {"key": "mlmVolumes.monthlyPV", "users": 1200},
        {"key": "isActive", "users": 300},
        {"key": "mlmStatus.rank", "users": 17},
    ]
    assert changes_table(REFUSED) == [] and changes_table({}) == []


def test_terminal_lines_of_a_full_summary_are_aligned_and_fit_100_columns():
    lines = summary_lines(FULL)
    assert lines[0] == "run 42 succeeded: period 2025-10, cut-off 2025-10-20 00:00:00 UTC"
    assert "  inputs:         98,765 purchases (newest purchaseID 123456), 10,000 users" in lines
    assert "  users:          10,000 computed, 1,234 written" in lines
    assert "  rank rises:     builder 12, growth 5 (17 rank history rows)" in lines
    assert "  new pioneers:   3 (userID 5, 7, 11)" in lines
    assert any(line.startswith("    fullVolume ") and line.endswith(" 1,200") for line in lines)
    assert any(line.startswith("    extract ") and "50,000 rows" in line and "40,000 rows/s" in line for line in lines)
    assert max(len(line) for line in lines) <= WIDTH
    keys = [line for line in lines if line.split()[0] in FULL["changes"]["by_key"]]
    assert len(keys) == 4
    assert len({len(line) for line in keys}) == 1  # the counts column is aligned


def test_a_dry_run_says_to_write_and_not_verified():
    dry = FULL | {"dry_run": True, "status": "dry run", "run_id": 0, "verified": None}
    assert "  users:          10,000 computed, 1,234 to write" in summary_lines(dry)
    text = summary_markdown(dry)
    assert text.startswith("# Dry run (nothing written)")
    assert "- users to write: 1,234" in text and "nothing to verify" in text


def test_a_run_that_committed_and_ended_before_its_verification_says_so():
    # a run whose process died after its COMMIT: the next run records it committed, unverified
    committed = FULL | {"status": "committed", "verified": None}
    text = summary_markdown(committed)
    assert "committed but not verified: the data was written" in text and "not recorded" not in text


def test_a_refused_summary_renders_its_problems_and_nothing_else():
    text = summary_markdown(REFUSED)
    assert text.startswith("# Run refused\n")
    assert "## Refused: bad input" in text
    assert "- cycle: 2 userID (3, 4); sponsor chain loops and never reaches the root; unreachable below them: userID 9" in text
    assert "refused: bad input, nothing written" in text
    assert "Changes by key" not in text and "Stage timings" not in text and "Inputs" not in text
    lines = summary_lines(REFUSED)
    assert lines[0] == "run refused"
    assert lines[1].startswith("  refused:        cycle: 2 userID (3, 4)")
    assert max(len(line) for line in lines) <= WIDTH


@pytest.mark.parametrize("summary", [{}, None, {"run_id": 7}, {"changes": {}}, {"watermark": {}, "timings_s": {"load": 0.0}, "rows": {"load": 5}}])
def test_missing_keys_are_tolerated(summary):
    assert summary_markdown(summary).startswith("# Run")
    assert summary_lines(summary)[0].startswith("run")
    assert isinstance(changes_table(summary), list)


def test_long_id_lists_and_errors_are_wrapped_or_cut_to_100_columns():
    summary = {"run_id": 3, "status": "failed", "new_pioneers": list(range(100_000, 100_050)), "error": "x" * 1000 + "\nsecond line"}
    lines = summary_lines(summary)
    assert max(len(line) for line in lines) <= WIDTH
    assert "second line" not in "\n".join(lines)
    assert "and 30 more" in "\n".join(lines)


def test_runs_table_aligns_columns_and_cuts_the_error():
    started = datetime(2025, 10, 20, 2, 0, tzinfo=timezone.utc)
    rows = [
        {"run_id": 12, "mode": "nightly", "status": "succeeded", "period": "2025-10", "as_of": AS_OF, "started_at": started,
         "finished_at": started.replace(second=42), "users_changed": 12345, "verified": True, "error": None},
        {"run_id": 9, "mode": "nightly", "status": "failed", "period": "2025-10", "as_of": AS_OF, "started_at": started,
         "finished_at": None, "users_changed": None, "verified": None, "error": "run 9: validation failed " + "y" * 100 + "\ndetail"},
    ]
    lines = runs_table(rows).splitlines()
    assert lines[0].split() == ["run", "mode", "status", "period", "as", "of", "started", "took", "written", "verified", "error"]
    assert lines[1].split()[:4] == ["12", "nightly", "succeeded", "2025-10"]
    assert "2025-10-20 00:00" in lines[1] and "2025-10-20 02:00" in lines[1] and "42 s" in lines[1] and "12,345" in lines[1] and " yes" in lines[1]
    assert lines[2].rstrip().endswith("…") and "detail" not in lines[2]
    assert lines[0].index("status") == lines[1].index("succeeded") == lines[2].index("failed")
    assert runs_table([]) == "no runs recorded"


def test_failure_lines_count_and_cut():
    failures = [{"user_id": 12345, "check_name": "owned_values", "detail": "d" * 200}, {"user_id": None, "check_name": "pioneers", "detail": "gap"}]
    lines = failure_lines(failures, total=7)
    assert lines[0] == "validation failures: 7 (first 2 shown)"
    assert lines[1].startswith("  user 12345: owned_values: ddd") and len(lines[1]) <= WIDTH
    assert lines[2] == "  user -: pioneers: gap"


# --- the ledger -------------------------------------------------------------------------------


def _start(db, period: str = "2025-10") -> int:
    return ledger.start_run(db, mode="nightly", period=period, as_of=AS_OF, plan_version="v1", dry_run=False)


def test_recent_runs_are_newest_first_and_limited(db):
    ids = [_start(db) for _ in range(5)]
    ledger.finish_run(db, ids[0], status="succeeded", summary=FULL, users_changed=1234, verified=True)
    assert [r["run_id"] for r in recent_runs(db)] == ids[::-1]
    assert [r["run_id"] for r in recent_runs(db, limit=2)] == ids[:-3:-1]
    oldest = recent_runs(db)[-1]
    assert oldest["status"] == "succeeded" and oldest["users_changed"] == 1234 and oldest["verified"] is True
    assert "summary" not in oldest and oldest["finished_at"] >= oldest["started_at"]
    with pytest.raises(ValueError, match="limit"):
        recent_runs(db, limit=0)


def test_run_detail_holds_the_summary_and_error(db):
    ok, refused = _start(db), _start(db)
    ledger.finish_run(db, ok, status="succeeded", summary=FULL, users_changed=1234, verified=True, max_purchase_id=123456, purchase_count=98765, user_count=10000)
    ledger.finish_run(db, refused, status="refused", summary=REFUSED, error="input rejected:\n  - cycle: ...")
    detail = run_detail(db, ok)
    assert detail["summary"]["changes"]["by_key"]["fullVolume"] == 1200 and detail["plan_version"] == "v1"
    assert "| fullVolume | 1,200 |" in summary_markdown(run_summary(detail))
    refused_detail = run_detail(db, refused)
    assert refused_detail["status"] == "refused" and refused_detail["error"].startswith("input rejected:")
    lines = summary_lines(run_summary(refused_detail))
    assert lines[0] == f"run {refused} refused: period 2025-10, cut-off 2025-10-20 00:00:00 UTC, plan v1"
    assert any(line.startswith("  refused:        cycle: 2 userID (3, 4)") for line in lines)
    assert "  error:          input rejected: - cycle: ..." in lines  # the line after a trailing colon too
    assert run_detail(db, 999_999) is None


def test_run_failures_in_recorded_order_and_limited(db):
    failed, other = _start(db), _start(db)
    failures = [{"user_id": i, "check_name": "owned_values", "detail": f"user {i} differs"} for i in (7, 3, 5)]
    ledger.record_failures(db, failed, failures + [{"user_id": None, "check_name": "pioneers", "detail": "numbers have a gap"}])
    ledger.record_failures(db, other, [{"user_id": 1, "check_name": "ranks", "detail": "fell"}])
    ledger.finish_run(db, failed, status="failed", error="run: validation failed before commit")
    rows = run_failures(db, failed)
    assert [(r["user_id"], r["check_name"]) for r in rows] == [(7, "owned_values"), (3, "owned_values"), (5, "owned_values"), (None, "pioneers")]
    assert [r["user_id"] for r in run_failures(db, failed, limit=2)] == [7, 3]
    assert failure_count(db, failed) == 4 and failure_count(db, other) == 1
    assert run_failures(db, 999_999) == [] and failure_count(db, 999_999) == 0
    lines = summary_lines(run_summary(run_detail(db, failed)))
    assert any("failed: validation failed before commit, nothing written" in line for line in lines)


def test_a_real_run_stored_in_the_ledger_renders(db):
    users = [
        {"userID": 1, "telegramID": 9000, "upline": 9000, "rank": "start", "createdAt": "2025-01-01T00:00:00"},
        {"userID": 2, "telegramID": 9001, "upline": 9000, "rank": "start", "createdAt": "2025-01-01T00:00:00"},
        {"userID": 3, "telegramID": 9002, "upline": 9001, "rank": "start", "createdAt": "2025-01-01T00:00:00"},
    ]
    purchases = [
        {"purchaseID": 1, "userID": 2, "packPrice": "250.00", "createdAt": "2025-10-02T10:00:00"},
        {"purchaseID": 2, "userID": 3, "packPrice": "5000.00", "createdAt": "2025-10-03T10:00:00"},
    ]
    insert_platform_rows(db, users, purchases)
    outcome = run_period(db, load_plan(), as_of=AS_OF, period="2025-10", root_telegram_id=9000)
    stored = run_summary(run_detail(db, outcome.run_id))
    lines = summary_lines(stored)
    assert lines[0].startswith(f"run {outcome.run_id} succeeded: period 2025-10")
    assert "  inputs:         2 purchases (newest purchaseID 2), 3 users" in lines
    assert "  users:          3 computed, 3 compared, 3 written" in lines
    assert max(len(line) for line in lines) <= WIDTH
    text = summary_markdown(stored)
    assert "verified: stored equals computed" in text and "| extract |" in text
    assert summary_markdown(outcome.summary()).splitlines()[0] == text.splitlines()[0]
    table = runs_table(recent_runs(db))
    assert table.splitlines()[1].split()[:3] == [str(outcome.run_id), "nightly", "succeeded"]
