"""The audit on a small platform with known deviations: exact counts and example ids, nothing
written anywhere, and the three report files."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import pytest

from db import audit, readback
from db.document_shapes import default_document
from db.scenario_data import insert_platform_rows
from flows.config import load_plan

ROOT = 9000
AS_OF = datetime(2025, 10, 20, tzinfo=timezone.utc)  # period 2025-10; every purchase is before it
WRITTEN_AT = "2025-10-01T00:00:00+00:00"

# The six documents of a user as the platform documents them (shared/platform/README.md): the
# defaults of mlmStatus and mlmVolumes, and the elided values ("...") of the others filled in.
PLATFORM_DOCUMENTS = {
    "mlmStatus": default_document("mlmStatus"),
    "mlmVolumes": default_document("mlmVolumes"),
    "totalVolume": {
        "qualifyingVolume": 0.0,
        "fullVolume": 0.0,
        "requiredForNextRank": 50000.0,
        "gap": 50000.0,
        "nextRank": "builder",
        "currentRank": "start",
        "capLimit": 25000.0,
        "branches": [],
        "calculatedAt": "2025-09-30T21:00:00.123456",
    },
    "personalData": {
        "eulaAccepted": True,
        "eulaVersion": "1.0",
        "eulaAcceptedAt": "2025-01-01T10:00:00",
        "dataFilled": False,
        "kyc": {"status": "not_started", "verifiedAt": None, "documents": [], "level": 0},
    },
    "emailVerification": {"confirmed": False, "token": "f3a9c1", "sentAt": "2025-01-01T10:00:00", "confirmedAt": None, "attempts": 1},
    "settings": {"strategy": "manual", "notifications": {"bonus": True, "purchase": True}, "display": {"showBalance": True}},
}
DROP = object()  # in documented(): remove the key


def _changed(document, changes: dict):
    """``document`` with ``changes`` merged in, key by key into nested objects (DROP removes a key)."""
    merged = copy.deepcopy(document)
    for key, value in changes.items():
        if value is DROP:
            merged.pop(key)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _changed(merged[key], value)
        else:
            merged[key] = value
    return merged


def documented(column: str, **changes) -> dict:
    """The platform's documented ``column`` document with ``changes`` (see _changed)."""
    return _changed(PLATFORM_DOCUMENTS[column], changes)


USERS = [
    {"userID": 1, "telegramID": 9000, "upline": 9000, "rank": "start"},
    # A founder with an assigned rank the plan does not have; monthlyPV stored as a number (as
    # documented; the platform's online code writes it so); stale fullVolume (set below); a kyc
    # status outside the documented enum; an emailVerification of someone else's making.
    {
        "userID": 2,
        "telegramID": 9001,
        "upline": 9000,
        "rank": "start",
        "mlmStatus": documented(
            "mlmStatus", isFounder=True, assignedRank="platinum", assignedBy=1, assignedAt="2025-08-01T00:00:00.000Z", lastActiveMonth="2025-09"
        ),
        "mlmVolumes": documented("mlmVolumes", monthlyPV=1500, personalTotal=1500),
        "personalData": documented("personalData", kyc={"status": "done"}),
        "emailVerification": {"verified": True},
        "settings": documented("settings", strategy="yolo"),
    },
    # A pioneer whose grant was saved; a foreign key in personalData; settings of another shape.
    {
        "userID": 3,
        "telegramID": 9002,
        "upline": 9001,
        "rank": "start",
        "mlmStatus": documented(
            "mlmStatus", hasPioneerBonus=True, pioneerGrantedAt="2025-09-06T10:00:00", pioneerPurchaseId=1, pioneerNumber=1, lastActiveMonth="2025-09"
        ),
        "personalData": documented("personalData", age=30),
        "emailVerification": documented("emailVerification"),
        "settings": {"language": "en"},
    },
    # A pioneer whose grant was lost (no hasPioneerBonus), a month that is not YYYY-MM, a NULL
    # mlmVolumes, an unknown nested key in settings.
    {
        "userID": 4,
        "telegramID": 9003,
        "upline": 9001,
        "rank": "start",
        "mlmStatus": documented("mlmStatus", lastActiveMonth="Sept 2025"),
        "personalData": documented("personalData"),
        "settings": documented("settings", notifications={"sms": True}),
    },
    # personalData that is not an object; an mlmVolumes without monthlyPV, with an autoship
    # missing its amount, and with a key nobody documented.
    {
        "userID": 5,
        "telegramID": 9004,
        "upline": 9002,
        "rank": "start",
        "mlmVolumes": {"personalTotal": 300, "autoship": {"enabled": True}, "promo": "x"},
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
    """(kind, path, found) -> (users, example ids, example values) of every deviation of one column."""
    structure = report["structure"][column]
    return {
        (kind, d["path"], d["found"]): (d["users"], d["example_user_ids"], d["example_values"])
        for kind, name in audit.KIND_LISTS.items()
        for d in structure[name]
    }


def _counts(column: dict) -> tuple:
    return column["users"], column["null"], column["objects"], column["compliant"], column["deviating"]


def test_mlm_volumes_counts_missing_keys_nested_and_unknown_keys_and_a_null_document(report):
    volumes = report["structure"]["mlmVolumes"]
    # user 2's monthlyPV is a number, as documented: its document complies
    assert _counts(volumes) == (6, 3, 3, 1, 2)
    assert volumes["compliant_share"] == round(1 / 6, 4) and volumes["compliant_share_of_objects"] == round(1 / 3, 4)
    assert volumes["written_by_recompute"] == 1
    assert _deviations(report, "mlmVolumes") == {
        ("missing_key", "mlmVolumes.monthlyPV", None): (2, [5, 6], [None, None]),
        ("missing_key", "mlmVolumes.autoship", None): (1, [6], [None]),
        ("missing_key", "mlmVolumes.autoship.amount", None): (1, [5], [None]),
        ("unknown_key", "mlmVolumes.promo", "string"): (1, [5], ['"x"']),
    }
    assert volumes["deviating_by_kind"] == {"missing_key": 2, "unknown_key": 1, "wrong_type": 0, "out_of_domain": 0}


def test_mlm_status_flags_a_rank_the_plan_does_not_have_and_a_bad_month(report):
    status = report["structure"]["mlmStatus"]
    # the documented defaults' nulls (rankQualifiedAt, assignedRank) and a saved pioneer's keys comply
    assert _counts(status) == (6, 3, 3, 1, 2)
    assert _deviations(report, "mlmStatus") == {
        ("out_of_domain", "mlmStatus.assignedRank", "string"): (1, [2], ['"platinum"']),
        ("out_of_domain", "mlmStatus.lastActiveMonth", "string"): (1, [4], ['"Sept 2025"']),
    }
    assert status["deviating_by_kind"] == {"missing_key": 0, "unknown_key": 0, "wrong_type": 0, "out_of_domain": 2}


def test_total_volume_lost_keys_and_a_key_nobody_documented(report):
    total = report["structure"]["totalVolume"]
    # runId and planVersion are the recompute's provenance: legal, not required
    missing = {"qualifyingVolume", "requiredForNextRank", "gap", "capLimit", "nextRank", "branches"}
    assert _counts(total) == (6, 5, 1, 0, 1) and total["written_by_recompute"] == 1
    assert {d["key"] for d in total["missing_keys"]} == missing
    assert all(d["example_user_ids"] == [6] for d in total["missing_keys"])
    assert [(d["path"], d["found"], d["example_values"]) for d in total["unknown_keys"]] == [("totalVolume.legacy", "number", ["1"])]


def test_the_documents_the_recompute_never_writes_are_checked_too(report):
    structure = report["structure"]
    personal = structure["personalData"]
    assert _counts(personal) == (6, 2, 3, 1, 2)
    assert personal["non_object"] == [{"type": "array", "users": 1, "example_user_ids": [5]}]
    assert _deviations(report, "personalData") == {
        ("out_of_domain", "personalData.kyc.status", "string"): (1, [2], ['"done"']),
        ("unknown_key", "personalData.age", "number"): (1, [3], ["30"]),
    }
    assert _counts(structure["emailVerification"]) == (6, 4, 2, 1, 1)
    assert {(kind, path) for kind, path, _ in _deviations(report, "emailVerification")} == {
        *(("missing_key", f"emailVerification.{key}") for key in ("confirmed", "token", "sentAt", "confirmedAt", "attempts")),
        ("unknown_key", "emailVerification.verified"),
    }
    assert _counts(structure["settings"]) == (6, 3, 3, 0, 3)
    assert _deviations(report, "settings") == {
        ("out_of_domain", "settings.strategy", "string"): (1, [2], ['"yolo"']),
        ("unknown_key", "settings.notifications.sms", "boolean"): (1, [4], ["true"]),
        ("unknown_key", "settings.language", "string"): (1, [3], ['"en"']),
        ("missing_key", "settings.strategy", None): (1, [3], [None]),
        ("missing_key", "settings.notifications", None): (1, [3], [None]),
        ("missing_key", "settings.display", None): (1, [3], [None]),
    }
    assert structure["settings"]["deviating_by_kind"] == {"missing_key": 1, "unknown_key": 2, "wrong_type": 0, "out_of_domain": 1}


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
    assert {p.name for p in files.values()} == {f"audit-20251020T000000Z.{s}" for s in ("md", "json", "png", "html")}
    assert json.loads(files["json"].read_text())["structure"] == report["structure"]
    markdown = files["markdown"].read_text()
    # the compliance table: a row per column with its shares and documents per deviation kind
    assert "| column | users | NULL | not an object | objects | compliant | compliant share | of objects | missing keys | unknown keys |" in markdown
    assert "| mlmVolumes | 6 | 3 | 0 | 3 | 1 | 16.7% | 33.3% | 2 | 1 | 0 | 0 |" in markdown
    assert "| personalData | 6 | 2 | array 1 | 3 | 1 | 16.7% | 33.3% | 0 | 1 | 0 | 1 |" in markdown
    assert "| out_of_domain | personalData.kyc.status | string | one of not_started\\|pending\\|verified\\|rejected | 1 | 2 (\"done\") |" in markdown
    assert "![fullVolume drift](audit-20251020T000000Z.png)" in markdown
    assert files["chart"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = files["html"].read_text()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "Drift histogram" in page


def test_the_chart_is_a_valid_png():
    import io

    import matplotlib.image

    from flows.audit import chart_png

    data = chart_png([{"bucket": "0", "users": 1_000_000}, {"bucket": ">=1M", "users": 3}])
    pixels = matplotlib.image.imread(io.BytesIO(data), format="png")
    # an image of the figure's size, with bars drawn in it (not one blank colour)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels[..., :3].std() > 0.05


def test_jsonb_columns_give_the_same_structure(platform, tmp_path):
    from flows.audit import audit_report

    as_json = audit.structure_compliance(audit.stored_snapshot(platform, load_plan()).findings)
    with platform.connect_raw() as connection:
        for column in ("mlmStatus", "mlmVolumes", "totalVolume", "personalData", "emailVerification", "settings"):
            connection.execute(f'ALTER TABLE users ALTER COLUMN "{column}" TYPE jsonb USING "{column}"::jsonb')
    as_jsonb = audit_report(platform, load_plan(), AS_OF, ROOT, tmp_path)
    assert as_jsonb["structure"] == as_json
    assert _deviations(as_jsonb, "personalData")[("out_of_domain", "personalData.kyc.status", "string")] == (1, [2], ['"done"'])
    assert as_jsonb["drift"]["pioneers"]["missing_user_ids"] == [4]


def test_without_a_root_the_drift_is_refused_and_the_structure_still_reported(db, tmp_path):
    from flows.audit import audit_report

    # two users sponsor themselves and no root is configured: the tree has no single root
    volumes = documented("mlmVolumes", monthlyPV="x")
    insert_platform_rows(db, [{"userID": 1, "telegramID": 10, "upline": 10}, {"userID": 2, "telegramID": 20, "upline": 20, "mlmVolumes": volumes}], [])
    before = _fingerprints(db)
    result = audit_report(db, load_plan(), AS_OF, None, tmp_path)
    assert _fingerprints(db) == before
    assert result["drift"]["status"] == "refused" and [p["kind"] for p in result["drift"]["problems"]] == ["several_roots"]
    assert _deviations(result, "mlmVolumes") == {("out_of_domain", "mlmVolumes.monthlyPV", "string"): (1, [2], ['"x"'])}
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


# --- the documented shapes ------------------------------------------------------------------------


def _structure(db) -> dict[str, dict]:
    """The structure report alone (no dry run): per column, as the audit reports it."""
    return audit.structure_compliance(audit.stored_snapshot(db, load_plan()).findings)


def _platform_user(user_id: int, upline: int, **documents) -> dict:
    """A user as the platform creates one (its six documented documents), ``documents`` replacing some."""
    return {"userID": user_id, "telegramID": 9000 + user_id - 1, "upline": upline, "rank": "start", **copy.deepcopy(PLATFORM_DOCUMENTS), **documents}


def _fully_compliant(structure: dict[str, dict], users: int) -> bool:
    return all((c["users"], c["compliant"], c["compliant_share"], c["deviating"]) == (users, users, 1.0, 0) for c in structure.values())


def test_the_platforms_documented_documents_comply(db):
    users = [
        _platform_user(1, 9000, mlmStatus=documented("mlmStatus", pioneerPurchasesCount=1)),
        # a pioneer, a founder with an assigned rank, a verified KYC with documents, another strategy
        _platform_user(
            2,
            9000,
            mlmStatus=documented(
                "mlmStatus",
                hasPioneerBonus=True,
                pioneerGrantedAt="2025-09-06T10:00:00",
                pioneerPurchaseId=7,
                pioneerNumber=1,
                isFounder=True,
                assignedRank="builder",
                assignedBy=1,
                assignedAt="2025-08-01T00:00:00.000Z",
                rankQualifiedAt="2025-08-01T00:00:00+00:00",
                lastActiveMonth="2025-09",
            ),
            personalData=documented("personalData", dataFilled=True, kyc={"status": "verified", "verifiedAt": "2025-02-01T00:00:00", "documents": ["passport.jpg"], "level": 2}),
            emailVerification=documented("emailVerification", confirmed=True, confirmedAt="2025-01-01T10:05:00"),
            settings=documented("settings", strategy="risky", notifications={"bonus": False}),
        ),
        # the platform's branches (with referralName, null where the referral has no first name),
        # and monthlyPV as the decimal string the recompute writes
        _platform_user(
            3,
            9000,
            mlmVolumes=documented("mlmVolumes", monthlyPV="1500.00", personalTotal=1500.5, autoship={"enabled": True, "amount": 250.0}),
            totalVolume=documented(
                "totalVolume",
                branches=[
                    {"referralTelegramId": 9003, "referralName": "Ann", "referralUserId": 4, "fullVolume": 30000.0, "cappedVolume": 25000.0, "isCapped": True},
                    {"referralTelegramId": 9004, "referralName": None, "referralUserId": 5, "fullVolume": 10.5, "cappedVolume": 10.5, "isCapped": False},
                ],
            ),
        ),
    ]
    insert_platform_rows(db, users, [])
    assert _fully_compliant(_structure(db), 3)


def test_documents_a_recompute_run_writes_comply(db):
    from tests.db.small_platform import nightly

    # a builder (rank rises: rankQualifiedAt), two pioneers (and the root's count), branches (with
    # the referral's name, and a referral without one), a user whose totalVolume the platform
    # never filled, and a migrated user with no documents at all (the load step seeds the defaults)
    users = [
        _platform_user(1, 9000),
        _platform_user(2, 9000),
        _platform_user(3, 9001),
        _platform_user(4, 9001),
        _platform_user(5, 9002, totalVolume=None),
        _platform_user(6, 9000, mlmStatus=None, mlmVolumes=None, totalVolume=None),
    ]
    purchases = [
        {"purchaseID": 1, "userID": 2, "packPrice": "1000.00", "createdAt": "2025-10-02T10:00:00"},
        {"purchaseID": 2, "userID": 3, "packPrice": "25000.00", "createdAt": "2025-10-03T10:00:00"},
        {"purchaseID": 3, "userID": 4, "packPrice": "25000.00", "createdAt": "2025-10-04T10:00:00"},
    ]
    insert_platform_rows(db, users, purchases)
    with db.connect_raw() as connection:
        connection.execute("""UPDATE users SET firstname = 'Ann' WHERE "userID" = 3""")
    nightly(db)
    with db.connect_raw() as connection:
        names = connection.execute("""SELECT jsonb_path_query_array("totalVolume"::jsonb, '$.branches[*].referralName') FROM users WHERE "userID" = 2""").fetchone()[0]
        builder, pioneers, count = connection.execute(
            """SELECT (SELECT "mlmStatus"::jsonb ->> 'rankQualifiedAt' FROM users WHERE "userID" = 2 AND rank = 'builder'),
                      (SELECT count(*) FROM users WHERE "mlmStatus"::jsonb ? 'pioneerNumber'),
                      (SELECT "mlmStatus"::jsonb -> 'pioneerPurchasesCount' FROM users WHERE "userID" = 1)"""
        ).fetchone()
    assert builder is not None and pioneers == 2 and count == 2  # the run wrote every kind of owned key
    assert sorted(names, key=str) == ["Ann", None]
    structure = _structure(db)
    assert _fully_compliant(structure, 6) and structure["totalVolume"]["written_by_recompute"] == 6


def test_each_kind_of_deviation_is_found_with_its_path_and_example(db):
    branch = {"referralTelegramId": 9003, "referralName": None, "referralUserId": 4, "fullVolume": 10, "cappedVolume": 10, "isCapped": False}
    users = [
        _platform_user(1, 9000, settings=None, emailVerification="confirmed"),  # NULL, and not an object
        _platform_user(
            2,
            9000,
            personalData=documented("personalData", kyc={"level": DROP, "status": "approved", "extra": 1}),  # missing, bad enum, unknown (nested)
            emailVerification=documented("emailVerification", attempts="1", token=None),  # wrong types: a string, a null not documented
            mlmStatus=documented("mlmStatus", hasPioneerBonus=True, pioneerNumber=51, isFounder="yes"),  # pioneer keys lost, number out of range
            settings=documented("settings", display="compact", notifications={"purchase": DROP}),
        ),
        _platform_user(
            3,
            9000,
            # two branches with the same deviation count once for the user; a branch that is not an object
            totalVolume=documented("totalVolume", branches=[branch | {"isCapped": "no"}, _changed(branch, {"isCapped": "yes", "bonus": 1, "referralName": DROP}), 7], gap="0"),
            mlmVolumes=documented("mlmVolumes", monthlyPV="1500.5", autoship={"enabled": DROP, "amount": "200"}),
        ),
    ]
    insert_platform_rows(db, users, [])
    structure = _structure(db)
    found = {
        (kind, d["path"], d["found"]): (d["users"], d["example_user_ids"], d["example_values"])
        for c in structure.values()
        for kind, name in audit.KIND_LISTS.items()
        for d in c[name]
    }
    assert found == {
        ("missing_key", "personalData.kyc.level", None): (1, [2], [None]),
        ("out_of_domain", "personalData.kyc.status", "string"): (1, [2], ['"approved"']),
        ("unknown_key", "personalData.kyc.extra", "number"): (1, [2], ["1"]),
        ("wrong_type", "emailVerification.attempts", "string"): (1, [2], ['"1"']),
        ("wrong_type", "emailVerification.token", "null"): (1, [2], ["null"]),
        ("missing_key", "mlmStatus.pioneerGrantedAt", None): (1, [2], [None]),
        ("missing_key", "mlmStatus.pioneerPurchaseId", None): (1, [2], [None]),
        ("out_of_domain", "mlmStatus.pioneerNumber", "number"): (1, [2], ["51"]),
        ("wrong_type", "mlmStatus.isFounder", "string"): (1, [2], ['"yes"']),
        ("wrong_type", "settings.display", "string"): (1, [2], ['"compact"']),
        ("missing_key", "settings.notifications.purchase", None): (1, [2], [None]),
        # two branches with the same deviation: one finding of the user, the first value as its example
        ("wrong_type", "totalVolume.branches[].isCapped", "string"): (1, [3], ['"no"']),
        ("unknown_key", "totalVolume.branches[].bonus", "number"): (1, [3], ["1"]),
        ("missing_key", "totalVolume.branches[].referralName", None): (1, [3], [None]),
        ("wrong_type", "totalVolume.branches[]", "number"): (1, [3], ["7"]),
        ("wrong_type", "totalVolume.gap", "string"): (1, [3], ['"0"']),
        ("out_of_domain", "mlmVolumes.monthlyPV", "string"): (1, [3], ['"1500.5"']),
        ("missing_key", "mlmVolumes.autoship.enabled", None): (1, [3], [None]),
        ("wrong_type", "mlmVolumes.autoship.amount", "string"): (1, [3], ['"200"']),
    }
    settings, email = structure["settings"], structure["emailVerification"]
    assert (settings["null"], settings["objects"], settings["compliant"]) == (1, 2, 1)
    assert email["non_object"] == [{"type": "string", "users": 1, "example_user_ids": [1]}] and email["compliant"] == 1
    assert structure["personalData"]["deviating_by_kind"] == {"missing_key": 1, "unknown_key": 1, "wrong_type": 0, "out_of_domain": 1}
