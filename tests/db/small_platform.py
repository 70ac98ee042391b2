"""A three-user platform shared by the write-path tests: a root, a founder with foreign keys
and stale owned values, and a buyer of a pioneer-sized pack below the founder."""

from __future__ import annotations

from datetime import datetime, timezone

from flows.config import load_plan
from flows.pipeline import run_period

AS_OF = datetime(2025, 10, 20, tzinfo=timezone.utc)
PERIOD = "2025-10"
ROOT = 9000

USERS = [
    {"userID": 1, "telegramID": 9000, "upline": 9000, "rank": "start", "createdAt": "2025-01-01T00:00:00"},
    {
        "userID": 2,
        "telegramID": 9001,
        "upline": 9000,
        "rank": "start",
        "createdAt": "2025-01-01T00:00:00",
        "mlmStatus": {"isFounder": True, "lastActiveMonth": "2024-01"},
        "mlmVolumes": {"monthlyPV": "1.00", "autoship": {"enabled": True}},
        "personalData": {"kyc": "verified"},
    },
    {"userID": 3, "telegramID": 9002, "upline": 9001, "rank": "start", "createdAt": "2025-01-01T00:00:00"},
]
PURCHASES = [
    {"purchaseID": 1, "userID": 2, "packPrice": "250.00", "createdAt": "2025-10-02T10:00:00"},
    {"purchaseID": 2, "userID": 3, "packPrice": "5000.00", "createdAt": "2025-10-03T10:00:00"},
]


def nightly(db, **kwargs):
    return run_period(db, load_plan(), as_of=AS_OF, period=PERIOD, root_telegram_id=ROOT, **kwargs)
