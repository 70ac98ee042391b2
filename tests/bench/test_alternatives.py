"""The benchmark's alternatives compute what the project computes (no timing here).

On a small platform, the ORM way (every purchase replayed from zeroed counters) must store the
same full and personal volumes as the project, and the SQL recompute must give the same full
volume and active partners, user by user: otherwise ``bench.alternatives`` compares unlike work.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from bench import io_floor, orm_way, sql_recompute
from db.demo import ROOT_TELEGRAM_ID, generate_and_load
from db.scenario_data import insert_platform_rows
from flows.config import load_plan
from flows.pipeline import run_period

AS_OF = datetime(2025, 11, 1, tzinfo=timezone.utc)
PERIOD = "2025-10"
CHAIN_ROOT = 7001


def chain_platform(db) -> int:
    """A root, a chain of 61 users below it (user k sits k-1 levels down, so user 62 is deeper
    than the plan's 50 levels), two users hanging off the chain and one under the root; purchases
    at the edges of the period, the threshold and the cut-off. Returns the root's telegramID."""
    users = [{"userID": 1, "telegramID": CHAIN_ROOT, "upline": CHAIN_ROOT, "rank": "start", "createdAt": "2024-01-01T00:00:00"}]
    users += [
        {"userID": k, "telegramID": 7000 + k, "upline": 7000 + k - 1, "rank": "start", "createdAt": "2024-01-01T00:00:00"}
        for k in range(2, 63)
    ]
    users += [
        {"userID": 63, "telegramID": 7063, "upline": 7030, "rank": "start", "createdAt": "2024-01-01T00:00:00"},
        {"userID": 64, "telegramID": 7064, "upline": 7063, "rank": "start", "createdAt": "2024-01-01T00:00:00",
         "mlmVolumes": {"autoship": {"enabled": True}}},
        {"userID": 65, "telegramID": 7065, "upline": CHAIN_ROOT, "rank": "start", "createdAt": "2024-01-01T00:00:00"},
    ]
    purchases = [
        (62, "250.00", "2025-10-05T10:00:00"),  # 50 levels below user 12, 51 below user 11
        (62, "0.01", "2025-03-01T00:00:00"),  # an earlier month: lifetime only
        (64, "199.99", "2025-10-10T00:00:00"),  # a cent short of active
        (64, "0.01", "2025-11-01T00:00:00"),  # at the cut-off: not counted
        (63, "5000.00", "2025-09-30T23:59:59"),  # the month before
        (65, "300.00", "2025-10-31T23:59:59"),
        (2, "1000.00", "2025-10-01T00:00:00"),
        (40, "200.00", "2025-10-15T00:00:00"),  # exactly the minimum: active
        (62, "10.00", "2025-12-01T00:00:00"),  # after the cut-off
    ]
    rows = [
        {"purchaseID": i, "userID": user, "packPrice": price, "createdAt": at}
        for i, (user, price, at) in enumerate(purchases, start=1)
    ]
    insert_platform_rows(db, users, rows)
    return CHAIN_ROOT


def demo_platform(db) -> int:
    generate_and_load(db, users=300, months=3, seed=5, purchases_per_user=1.0, end_month=PERIOD)
    return ROOT_TELEGRAM_ID


def orm_values(db) -> dict[int, tuple]:
    """Per userID, what the ORM way stored: (fullVolume, personalVolumeTotal, and the same two in JSON)."""
    with db.connect_raw() as connection:
        rows = connection.execute(
            """SELECT "userID", "fullVolume", "personalVolumeTotal",
                      coalesce(("totalVolume"::jsonb ->> 'fullVolume')::numeric, 0),
                      coalesce(("mlmVolumes"::jsonb ->> 'personalTotal')::numeric, 0)
               FROM users"""
        ).fetchall()
    return {row[0]: row[1:] for row in rows}


def project_values(db) -> dict[int, tuple]:
    """Per userID, what the project stored: (fullVolume, personalVolumeTotal, active partners of the period)."""
    with db.connect_raw() as connection:
        rows = connection.execute(
            """SELECT u."userID", u."fullVolume", u."personalVolumeTotal", s.active_partners
               FROM users AS u JOIN mlm_period_snapshots AS s ON s.user_id = u."userID" AND s.period = %s""",
            [PERIOD],
        ).fetchall()
    return {row[0]: row[1:] for row in rows}


def _rows_staged_by(monkeypatch, copy_in) -> int:
    """How many rows ``copy_in`` put in the floor's staging table (counted before its rollback)."""
    real, counted = io_floor.load.stage_documents, []

    def stage_and_count(connection, documents, table):
        real(connection, documents, table)
        counted.append(connection.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])

    monkeypatch.setattr(io_floor.load, "stage_documents", stage_and_count)
    copy_in()
    monkeypatch.setattr(io_floor.load, "stage_documents", real)
    assert len(counted) == 1
    return counted[0]


@pytest.mark.parametrize("build", [chain_platform, demo_platform], ids=["chain", "demo"])
def test_the_alternatives_compute_what_the_project_computes(db, build, monkeypatch):
    root = build(db)
    plan = load_plan()

    # The ORM way, every purchase replayed from zero, before the project writes anything.
    engine = orm_way.platform_engine(db)
    try:
        orm_way.zero_counters(engine)
        purchases = orm_way.every_purchase(engine, AS_OF)
        replayed = orm_way.replay(engine, purchases, root_telegram_id=root, max_depth=plan.max_depth)
    finally:
        engine.dispose()
    assert replayed.purchases == len(purchases) > 0
    by_orm = orm_values(db)

    outcome = run_period(db, plan, as_of=AS_OF, period=PERIOD, root_telegram_id=root)
    by_project = project_values(db)
    assert set(by_project) == set(by_orm)

    for user_id, (full, personal, json_full, json_personal) in by_orm.items():
        project_full, project_personal, _ = by_project[user_id]
        assert (full, personal) == (project_full, project_personal), f"user {user_id}"
        assert (json_full, json_personal) == (project_full, project_personal), f"user {user_id}"

    with db.connect_raw() as connection:
        seconds = sql_recompute.recompute(connection, as_of=AS_OF, period=PERIOD, plan=plan, root_telegram_id=root)
        by_sql = sql_recompute.results(connection)
        comparison = sql_recompute.compare_with_project(connection, PERIOD)
    assert isinstance(seconds, float)  # finished (None is a statement that ran out of time)
    assert {u: (full, partners) for u, (full, _, partners) in by_project.items()} == by_sql
    assert comparison.matches and comparison.users == len(by_project)
    assert comparison.sql_full_volume_total == sum(full for full, _, _ in by_project.values())

    # The floor's two halves run on the same data (their bytes, not their speed): every query
    # the extract sends is COPYed out, and every document the run wrote is COPYed in.
    copied = io_floor.copy_out_inputs(db, AS_OF, plan.pioneer_min_purchase_cents)
    sent = [s for statements in io_floor.extract_statements(db, AS_OF, plan.pioneer_min_purchase_cents) for s, _ in statements]
    assert copied.queries == sum(io_floor.is_query(s) and "pg_export_snapshot" not in s for s in sent) > 0
    assert copied.bytes > 0
    staged_rows = _rows_staged_by(monkeypatch, lambda: io_floor.copy_in_documents(db, [outcome.recomputed.documents]))
    assert staged_rows == outcome.recomputed.documents.height == len(by_project)
    with db.connect_raw() as connection:
        assert connection.execute("SELECT to_regclass(%s)", [io_floor.FLOOR_STAGING]).fetchone()[0] is None  # rolled back

    if build is chain_platform:
        # Not vacuous: the depth limit, the threshold and the cut-off are where the rules say.
        assert by_sql[12] == (Decimal("5650.00"), 2)  # user 62 is exactly 50 levels down
        assert by_sql[11] == (Decimal("5399.99"), 1)  # ... and 51 here
        assert by_sql[1] == (Decimal("6699.99"), 0)  # the root: 50 levels too, no active partners
