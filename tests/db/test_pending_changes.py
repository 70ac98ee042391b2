"""The run report's counts of what the write changes (``validate.pending_changes``), per column and
per key, on the three-user platform, derived by hand."""

from __future__ import annotations

from db.scenario_data import insert_platform_rows
from tests.db.small_platform import PURCHASES, USERS, nightly


def test_the_changes_are_counted_per_column_and_key(db):
    insert_platform_rows(db, USERS, PURCHASES)
    with db.connect_raw() as c:
        c.execute("""UPDATE users SET "rank" = NULL WHERE "userID" = 3""")  # the platform allows it
        c.execute("""UPDATE users SET "personalVolumeTotal" = 100.00 WHERE "userID" = 2""")  # a stale total
    changes = nightly(db).changes
    assert changes["users"] == 3
    assert changes["by_key"] == {
        "rank": 1,  # user 3: NULL -> start (the others stay start)
        "isActive": 3,  # none stored; users 2 and 3 active, the root not
        "fullVolume": 2,  # the root 5250.00, user 2 5000.00; user 3 has no downline
        "personalVolumeTotal": 2,  # users 2 (100.00 -> 250.00) and 3 (5000.00)
        "mlmStatus.lastActiveMonth": 3,  # user 2's 2024-01 moves to 2025-10; the others had none
        # user 3's 5000.00 pack makes it the one pioneer; the root counts it
        "mlmStatus.hasPioneerBonus": 1, "mlmStatus.pioneerGrantedAt": 1, "mlmStatus.pioneerPurchaseId": 1,
        "mlmStatus.pioneerNumber": 1, "mlmStatus.pioneerPurchasesCount": 1,
        "mlmVolumes.monthlyPV": 3, "mlmVolumes.personalTotal": 3,
        **{f"totalVolume.{key}": 3 for key in (
            "qualifyingVolume", "fullVolume", "requiredForNextRank", "gap", "nextRank", "currentRank", "capLimit", "branches",
        )},
        "mlmStatus (was NULL)": 2, "mlmVolumes (was NULL)": 2,  # users 1 and 3; user 2 had both
        "totalVolume (was NULL)": 3,
    }  # fmt: skip
    assert changes["rank_rises_to"] == {}  # start is the entry rank: no rise
    assert (changes["full_volume_moved_total"], changes["full_volume_moved_max"]) == ("10250.00", "5250.00")
    assert changes["personal_volume_moved_total"] == "5150.00"  # 150.00 + 5000.00
