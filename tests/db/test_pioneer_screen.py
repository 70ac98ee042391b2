"""The pioneer screen: a test on a document's text, without parsing it, that must let through
every ``mlmStatus`` holding a pioneer grant or key and should stop the platform's defaults and
founders (thousands of them at 1M users, each parsed otherwise)."""

from __future__ import annotations

import pytest

from db.extract import may_be_pioneer

HOLD_A_PIONEER_KEY = [
    '{"hasPioneerBonus": true}',
    '{"hasPioneerBonus":true}',
    '{"isFounder": false, "hasPioneerBonus" :\n\ttrue }',
    '{"hasPioneerBonus": false, "hasPioneerBonus": true}',  # the last one counts
    '{"hasPioneerBonus": false, "pioneerGrantedAt": "2025-09-01T10:00:00"}',
    '{"pioneerPurchaseId": 20}',
    '{"has\\u0050ioneerBonus": true}',  # an escaped key: let through, parsed
]
HOLD_NO_GRANT = [
    '{"isFounder": true, "assignedRank": null, "hasPioneerBonus": false, "pioneerPurchasesCount": 0}',
    '{"hasPioneerBonus": false, "note": "true"}',
    '{"assignedRank": null, "rankQualifiedAt": null}',
    '{"isFounder": true}',
]


@pytest.mark.parametrize("column_type", ["json", "jsonb"])
def test_the_screen_lets_every_grant_through_and_stops_founders_and_defaults(db, column_type):
    documents = HOLD_A_PIONEER_KEY + HOLD_NO_GRANT
    with db.connect_raw() as connection:
        connection.execute(f'CREATE TEMPORARY TABLE documents (i int, "mlmStatus" {column_type})')
        with connection.cursor().copy("COPY documents (i, \"mlmStatus\") FROM STDIN") as copy:
            for i, text in enumerate(documents):
                copy.write_row((i, text))
        screened = dict(
            connection.execute(f'SELECT i, COALESCE({may_be_pioneer(chr(34) + "mlmStatus" + chr(34), is_json=column_type == "json")}, false) FROM documents').fetchall()
        )
    assert [screened[i] for i in range(len(HOLD_A_PIONEER_KEY))] == [True] * len(HOLD_A_PIONEER_KEY)
    # jsonb screens by containment: a grant or another pioneer key, exactly
    assert [screened[len(HOLD_A_PIONEER_KEY) + i] for i in range(len(HOLD_NO_GRANT))] == [False] * len(HOLD_NO_GRANT)
