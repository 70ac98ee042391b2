"""The audit on a small platform with known deviations: exact counts and example ids, nothing
written anywhere, and the three report files."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import pytest

from db import readback
from db.scenario_data import insert_platform_rows
from flows.config import load_plan

ROOT = 9000
AS_OF = datetime(2025, 10, 20, tzinfo=timezone.utc)  # period 2025-10; every purchase is before it
WRITTEN_AT = "2025-10-01T00:00:00+00:00"
USERS = [
    {"userID": 1, "telegramID": 9000, "upline": 9000, "rank": "start"},
    # A founder with an assigned rank the plan does not have; monthlyPV stored as a number
    # (the platform's online code wrote it so); stale fullVolume (set below).
    {
        "userID": 2,
        "telegramID": 9001,
        "upline": 9000,
        "rank": "start",
        "mlmStatus": {"isFounder": True, "assignedRank": "platinum", "assignedBy": 1, "assignedAt": "2025-08-01T00:00:00.000Z", "lastActiveMonth": "2025-09"},
        "mlmVolumes": {"monthlyPV": 1500, "personalTotal": 1500},
        "personalData": {"firstName": "Ann", "country": "DE"},
        "emailVerification": {"verified": True},
    },
    # A pioneer whose grant was saved.
    {
        "userID": 3,
        "telegramID": 9002,
        "upline": 9001,
        "rank": "start",
        "mlmStatus": {"hasPioneerBonus": True, "pioneerGrantedAt": "2025-09-06T10:00:00", "pioneerPurchaseId": 1, "pioneerNumber": 1, "lastActiveMonth": "2025-09"},
        "personalData": {"firstName": "Bo", "age": 30},
        "settings": {"language": "en"},
    },
    # A pioneer whose grant was lost (no hasPioneerBonus), a month that is not YYYY-MM, and a
    # NULL mlmVolumes.
    {"userID": 4, "telegramID": 9003, "upline": 9001, "rank": "start", "mlmStatus": {"lastActiveMonth": "Sept 2025"}},
    # personalData that is not an object; a foreign key in mlmVolumes (kept, not a failure).
    {
        "userID": 5,
        "telegramID": 9004,
        "upline": 9002,
        "rank": "start",
        "mlmVolumes": {"personalTotal": 300, "graceDayStreak": 2, "autoship": {"enabled": True}, "promo": "x"},
        "personalData": [1, 2],
    },
    # Documents the recompute wrote (totalVolume has asOf) that have lost keys since.
    {
        "userID": 6,
        "telegramID": 9005,
        "upline": 9000,
        "rank": "start",
        "mlmVolumes": {"personalTotal": 0},
        "totalVolume": {"asOf": WRITTEN_AT, "calculatedAt": WRITTEN_AT, "fullVolume": 0, "currentRank": "start", "legacy": 1},
    },
]
PURCHASES = [
    {"purchaseID": 1, "userID": 3, "packPrice": "25000.00", "createdAt": "2025-09-06T10:00:00"},
    {"purchaseID": 2, "userID": 4, "packPrice": "25000.00", "createdAt": "2025-09-07T10:00:00"},
    {"purchaseID": 3, "userID": 2, "packPrice": "1000.00", "createdAt": "2025-10-05T10:00:00"},
    {"purchaseID": 4, "userID": 5, "packPrice": "300.00", "createdAt": "2025-10-10T10:00:00"},
    {"purchaseID": 5, "userID": 3, "packPrice": "200.00", "createdAt": "2025-10-12T10:00:00"},
]


def _fingerprints(db) -> dict[str, str]:
    """A digest of every table in the database (the platform's and the project's)."""
    with db.connect_raw() as connection:
        tables = [r[0] for r in connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1").fetchall()]
    return readback.table_fingerprints(db, tables)


@pytest.fixture
def platform(db):
    insert_platform_rows(db, USERS, PURCHASES)
    with db.connect_raw() as connection:
        connection.execute("""UPDATE users SET "fullVolume" = 999.00, "teamVolumeTotal" = 999.00 WHERE "userID" = 2""")
    return db


@pytest.fixture
def report(platform, tmp_path):
    from flows.audit import audit_report

    before = _fingerprints(platform)
    result = audit_report(platform, load_plan(), AS_OF, ROOT, tmp_path)
    assert _fingerprints(platform) == before  # read-only: no table changed, none appeared or vanished
    return result


def _deviations(report: dict, column: str) -> dict[tuple, tuple]:
    """(kind, key, found) -> (users, example ids, example values) of one column's deviations."""
    return {(d["kind"], d["key"], d["found"]): (d["users"], d["example_user_ids"], d["example_values"]) for d in report["structure"][column]["deviations"]}


def test_mlm_volumes_counts_a_wrong_type_a_lost_key_and_a_null_document(report):
    volumes = report["structure"]["mlmVolumes"]
    assert (volumes["users"], volumes["null"], volumes["objects"], volumes["compliant"], volumes["deviating"]) == (6, 3, 3, 1, 2)
    assert volumes["compliant_share"] == round(1 / 6, 4) and volumes["written_by_recompute"] == 1
    assert _deviations(report, "mlmVolumes") == {
        ("wrong_type", "monthlyPV", "number"): (1, [2], ["1500"]),
        # user 6's documents were written by the recompute (totalVolume has asOf): monthlyPV is required
        ("missing_key", "monthlyPV", None): (1, [6], [None]),
    }
    # user 5's foreign key is listed, not a failure: its document complies
    assert volumes["unknown_keys"] == [{"key": "promo", "users": 1, "example_user_ids": [5]}]


def test_mlm_status_flags_a_rank_the_plan_does_not_have_and_a_bad_month(report):
    status = report["structure"]["mlmStatus"]
    assert (status["null"], status["objects"], status["compliant"]) == (3, 3, 1)
    assert _deviations(report, "mlmStatus") == {
        ("out_of_domain", "assignedRank", "string"): (1, [2], ['"platinum"']),
        ("out_of_domain", "lastActiveMonth", "string"): (1, [4], ['"Sept 2025"']),
    }
    assert status["deviation_kinds"] == {"out_of_domain": 2}


def test_total_volume_is_owned_whole(report):
    total = report["structure"]["totalVolume"]
    missing = {"qualifyingVolume", "requiredForNextRank", "gap", "capLimit", "nextRank", "branches", "runId", "planVersion"}
    assert (total["null"], total["objects"], total["compliant"], total["written_by_recompute"]) == (5, 1, 0, 1)
    assert total["deviation_kinds"] == {"missing_key": len(missing), "unknown_key": 1}
    assert {key for kind, key, _ in _deviations(report, "totalVolume") if kind == "missing_key"} == missing
    assert total["unknown_keys"] == [{"key": "legacy", "users": 1, "example_user_ids": [6]}]


def test_free_documents_report_shapes_and_key_types(report):
    personal = report["structure"]["personalData"]
    assert (personal["null"], personal["objects"], personal["compliant"]) == (3, 2, 2)
    assert personal["non_object"] == [{"type": "array", "users": 1, "example_user_ids": [5]}]
    assert personal["key_types"] == [
        {"key": "firstName", "type": "string", "users": 2},
        {"key": "age", "type": "number", "users": 1},
        {"key": "country", "type": "string", "users": 1},
    ]
    assert report["structure"]["settings"]["key_types"] == [{"key": "language", "type": "string", "users": 1}]


def test_drift_finds_the_stale_rank_the_lost_pioneer_and_the_money(report):
    drift = report["drift"]
    assert drift["status"] == "computed" and drift["users_compared"] == 6 and drift["quarantined"] == []
    assert drift["changes"]["users"] == 6 and drift["changes"]["rank_rises_to"] == {"builder": 1}
    assert drift["ranks"]["differing"] == [{"stored": "start", "recomputed": "builder", "users": 1, "example_user_ids": [2]}]
    assert drift["ranks"]["crosstab"] == {"start": {"start": 5, "builder": 1}}
    assert drift["pioneers"] | {} == {"recomputed": 2, "stored": 1, "missing": 1, "missing_user_ids": [4], "extra": 0, "extra_user_ids": []}
    assert {c: n["example_user_ids"] for c, n in drift["null_documents"].items()} == {
        "mlmStatus": [1, 5, 6],
        "mlmVolumes": [1, 3, 4],
        "totalVolume": [1, 2, 3, 4, 5],
    }
    # fullVolume: root 51,500 (stored 0), user 2 50,500 (stored a stale 999), user 3 300 (stored 0)
    assert drift["money"]["fullVolume"] == {
        "users_differing": 3,
        "users_missing_value": 0,
        "total_abs_difference": "101301.00",
        "net_difference": "101301.00",
        "largest_abs_difference": "51500.00",
        "largest_user_id": 1,
        "example_user_ids": [1, 2, 3],
    }
    # monthlyPV: user 2 stored 1,500 for 1,000 bought in October; users 3 and 5 have none stored
    assert drift["money"]["monthlyPV"]["total_abs_difference"] == "1000.00" and drift["money"]["monthlyPV"]["users_missing_value"] == 5
    assert {h["bucket"]: h["users"] for h in drift["full_volume_histogram"] if h["users"]} == {"0": 3, "100-1K": 1, "10K-100K": 2}


def test_the_report_files(report):
    files = {kind: Path(path) for kind, path in report["files"].items()}
    assert {p.name for p in files.values()} == {f"audit-20251020T000000Z.{s}" for s in ("md", "json", "png")}
    assert json.loads(files["json"].read_text())["structure"] == report["structure"]
    markdown = files["markdown"].read_text()
    assert "| wrong_type | monthlyPV | number |" in markdown and "![fullVolume drift](audit-20251020T000000Z.png)" in markdown
    assert files["chart"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_chart_is_a_valid_png():
    import struct
    import zlib

    from flows.audit import chart_png

    data = chart_png([{"bucket": "0", "users": 1_000_000}, {"bucket": ">=1M", "users": 3}])
    width, height = struct.unpack(">II", data[16:24])
    idat_length = struct.unpack(">I", data[33:37])[0]
    assert data[12:16] == b"IHDR" and data[37:41] == b"IDAT"
    assert len(zlib.decompress(data[41 : 41 + idat_length])) == height * (1 + 3 * width)


def test_jsonb_columns_give_the_same_structure(platform, tmp_path):
    from flows.audit import audit_report

    with platform.connect_raw() as connection:
        for column in ("mlmStatus", "mlmVolumes", "totalVolume", "personalData", "emailVerification", "settings"):
            connection.execute(f'ALTER TABLE users ALTER COLUMN "{column}" TYPE jsonb USING "{column}"::jsonb')
    as_jsonb = audit_report(platform, load_plan(), AS_OF, ROOT, tmp_path)
    assert _deviations(as_jsonb, "mlmVolumes")[("wrong_type", "monthlyPV", "number")] == (1, [2], ["1500"])
    assert as_jsonb["structure"]["personalData"]["non_object"][0]["example_user_ids"] == [5]
    assert as_jsonb["drift"]["pioneers"]["missing_user_ids"] == [4]


def test_without_a_root_the_drift_is_refused_and_the_structure_still_reported(db, tmp_path):
    from flows.audit import audit_report

    # two users sponsor themselves and no root is configured: the tree has no single root
    insert_platform_rows(db, [{"userID": 1, "telegramID": 10, "upline": 10}, {"userID": 2, "telegramID": 20, "upline": 20, "mlmVolumes": {"monthlyPV": "x"}}], [])
    before = _fingerprints(db)
    result = audit_report(db, load_plan(), AS_OF, None, tmp_path)
    assert _fingerprints(db) == before
    assert result["drift"]["status"] == "refused" and [p["kind"] for p in result["drift"]["problems"]] == ["several_roots"]
    assert _deviations(result, "mlmVolumes") == {("out_of_domain", "monthlyPV", "string"): (1, [2], ['"x"'])}
    assert Path(result["files"]["markdown"]).read_text().count("Not computed (refused)") == 1


def test_the_flow_publishes_the_report(platform, prefect_server, monkeypatch, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.audit import audit

    monkeypatch.setenv("MLM_DATABASE_URL", platform.uri)
    monkeypatch.setenv("MLM_ROOT_TELEGRAM_ID", str(ROOT))
    before = _fingerprints(platform)
    result = audit(as_of=AS_OF, out_dir=str(tmp_path))
    assert _fingerprints(platform) == before
    assert result["drift"]["pioneers"]["missing_user_ids"] == [4] and Path(result["files"]["chart"]).exists()
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["mlm-audit"])))
    assert artifacts and "## Drift: stored against recomputed" in artifacts[0].data


def test_findings_checked_in_two_halves_equal_one_pass(platform):
    from db import audit
    from db.extract import snapshot

    plan = load_plan()
    with snapshot(platform) as cursor:
        whole = audit.structure_findings(cursor, plan)
    halves = audit.stored_snapshot(platform, plan).findings
    assert audit.structure_compliance(halves) == audit.structure_compliance(whole)
    ordered = ["column", "section", "kind", "key", "found", "expected"]
    assert halves.filter(pl.col("section") != "counts").sort(ordered, nulls_last=True).equals(
        whole.filter(pl.col("section") != "counts").sort(ordered, nulls_last=True)
    )
