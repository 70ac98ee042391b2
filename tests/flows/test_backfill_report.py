"""A backfill says which months it computed, skipped and wrote, with rows per month, on the
terminal, in its ledger row and in its Prefect artifacts; a refused backfill is in the ledger."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from flows import cli
from tests.flows.test_flows import NOW, _platform
from transforms.recompute import period_of


@pytest.fixture
def platform(db, monkeypatch, prefect_server):
    return _platform(db, monkeypatch)


def _ledger(db) -> list[tuple]:
    with db.connect_raw() as connection:
        return connection.execute("SELECT run_id, mode, status, error, summary FROM mlm_runs ORDER BY run_id").fetchall()


def _rows_per_month(db) -> dict[str, int]:
    with db.connect_raw() as connection:
        return dict(connection.execute("SELECT period, count(*) FROM mlm_period_snapshots GROUP BY period").fetchall())


def _newest_artifact(key: str):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    assert found, f"no artifact {key}"
    return max(found, key=lambda artifact: artifact.created)


def test_a_backfill_of_a_month_that_has_not_ended_is_refused_in_the_ledger(platform, capsys):
    this_month = period_of(datetime.now(timezone.utc))
    assert cli.main(["backfill", "--from", "2025-10", "--to", this_month]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{this_month} has not ended" in err[0], err  # Prefect's traceback of it is not shown
    [(_, mode, status, error, _)] = _ledger(platform)
    assert (mode, status) == ("backfill", "refused") and f"{this_month} has not ended" in error
    assert _rows_per_month(platform) == {}  # nothing else written


def test_a_backfill_lists_its_months_with_rows_per_month(platform, capsys):
    from flows.periods import close

    close("2025-09", now=NOW)
    capsys.readouterr()
    assert cli.main(["backfill", "--from", "2025-08", "--to", "2025-10"]) == cli.EXIT_OK
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("backfill run ") and "months 2025-08 to 2025-10" in out[0], out
    assert "    2025-08  written: 4 snapshot rows" in out
    assert "    2025-09  skipped: closed (its final snapshot is kept)" in out
    assert "    2025-10  written: 4 snapshot rows" in out
    assert any("3 asked for: 2 computed, 1 skipped; 8 snapshot rows written" in line for line in out), out

    run_id, mode, status, _, summary = _ledger(platform)[-1]
    assert (mode, status) == ("backfill", "succeeded")
    assert summary["months"] == ["2025-08", "2025-10"] and summary["skipped_closed"] == ["2025-09"]
    assert summary["snapshot_rows_by_month"] == {"2025-08": 4, "2025-10": 4} and summary["snapshot_rows"] == 8
    stored = _rows_per_month(platform)
    assert {m: stored[m] for m in ("2025-08", "2025-10")} == summary["snapshot_rows_by_month"]

    table = _newest_artifact("mlm-backfill-2025-10-changes")
    data = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert [(r["month"], r["snapshot_rows"]) for r in data] == [("2025-08", 4), ("2025-09", None), ("2025-10", 4)]
    markdown = _newest_artifact("mlm-backfill-2025-10")
    assert "## Months" in markdown.data and "| 2025-09 | - | skipped: closed" in markdown.data

    # again: every open month already has snapshots, so nothing is computed and both are said to be skipped
    assert cli.main(["backfill", "--from", "2025-08", "--to", "2025-10"]) == cli.EXIT_OK
    out = capsys.readouterr().out.splitlines()
    assert "    2025-08  skipped: has snapshots (reprocess missing)" in out
    summary = _ledger(platform)[-1][4]
    assert summary["months"] == [] and summary["skipped_present"] == ["2025-08", "2025-10"] and summary["snapshot_rows"] == 0


def test_reprocess_failed_recomputes_the_months_of_a_backfill_that_did_not_succeed(platform, capsys):
    """A refused (or failed) backfill keeps its months in the ledger, so ``--reprocess failed``
    computes them again though their earlier snapshots are present (``missing`` would not)."""
    assert cli.main(["backfill", "--from", "2025-08", "--to", "2025-09"]) == 0
    with platform.connect_raw() as connection:  # a purchase of nobody makes the next backfill refuse
        connection.execute("SET session_replication_role = replica")  # past the foreign key, as a lost user would be
        connection.execute(
            """INSERT INTO purchases SELECT 900, 424242, "optionID", "projectID", "projectName", "packQty", "packPrice",
                      "ownerTelegramID", "ownerEmail", '2025-09-10', '2025-09-10' FROM purchases LIMIT 1"""
        )
    assert cli.main(["backfill", "--from", "2025-08", "--to", "2025-09", "--reprocess", "all"]) == cli.EXIT_BAD_INPUT
    refused = _ledger(platform)[-1]
    assert refused[2] == "refused" and refused[4]["months"] == ["2025-08", "2025-09"] and refused[4]["problems"]
    with platform.connect_raw() as connection:
        connection.execute('DELETE FROM purchases WHERE "purchaseID" = 900')
    assert cli.main(["backfill", "--from", "2025-08", "--to", "2025-09"]) == 0  # missing: both present
    assert _ledger(platform)[-1][4]["months"] == []
    assert cli.main(["backfill", "--from", "2025-08", "--to", "2025-09", "--reprocess", "failed"]) == 0
    last = _ledger(platform)[-1]
    assert last[2] == "succeeded" and last[4]["months"] == ["2025-08", "2025-09"]
