"""Migration 0004 widens ``mlm_periods.input_fingerprint`` in place: a database at 0003 keeps
its closed months, and a close's fingerprint at a real platform's sizes then fits."""

from __future__ import annotations

import sqlalchemy as sa

from db import migrate

OLD = "plan=default-2025.1;max_purchase_id=432;purchases=400;users=50"  # fits varchar(64)
# 12M purchases and 1.2M users, and a plan version as long as mlm_runs allows (100).
LONG = f"plan={'v' * 100};max_purchase_id=99999999;purchases=12345678;users=1234567"


def test_a_database_at_0003_upgrades_in_place(empty_db):
    engine = empty_db.engine
    migrate.upgrade(engine, "0003")
    assert migrate.current_revision(engine) == "0003"
    with engine.begin() as c:
        c.execute(
            sa.text("INSERT INTO mlm_periods (period, is_closed, closed_at, close_run_id, input_fingerprint) VALUES ('2025-08', true, now(), 7, :f)"),
            {"f": OLD},
        )
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == "0004"
    with engine.begin() as c:
        assert c.execute(sa.text("SELECT period, is_closed, close_run_id, input_fingerprint FROM mlm_periods")).all() == [("2025-08", True, 7, OLD)]
        c.execute(sa.text("INSERT INTO mlm_periods (period, is_closed, input_fingerprint) VALUES ('2025-09', true, :f)"), {"f": LONG})
        assert c.execute(sa.text("SELECT input_fingerprint FROM mlm_periods WHERE period = '2025-09'")).scalar() == LONG
    assert len(LONG) > 64
