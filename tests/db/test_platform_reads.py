"""The platform's own code still reads what the recompute writes.

The platform maps ``users`` with ``Column(JSON)`` (no MutableDict) and reads its documents by
key. A user written by the recompute must offer every documented key of its three documents,
of the documented type, whatever the user's documents were before (NULL here, for user 3).
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import JSON, BigInteger, Boolean, Column, Integer, Numeric, String
from sqlalchemy.orm import Session, declarative_base

from db.document_shapes import DEFAULT_DOCUMENTS
from tests.db.small_platform import nightly

Base = declarative_base()


class User(Base):
    """Declared as the platform's model declares it (the columns this test reads)."""

    __tablename__ = "users"
    userID = Column(Integer, primary_key=True)
    telegramID = Column(BigInteger, nullable=False, unique=True)
    upline = Column(BigInteger)
    firstname = Column(String)
    rank = Column(String, index=True)
    isActive = Column(Boolean, index=True)
    fullVolume = Column(Numeric(15, 2), nullable=False, index=True)
    teamVolumeTotal = Column(Numeric(12, 2))
    personalVolumeTotal = Column(Numeric(12, 2), nullable=False)
    totalVolume = Column(JSON)
    mlmStatus = Column(JSON)
    mlmVolumes = Column(JSON)


TOTAL_VOLUME_KEYS = ("qualifyingVolume", "fullVolume", "requiredForNextRank", "gap", "nextRank", "currentRank", "capLimit", "branches", "calculatedAt")
STATUS_TYPES = {
    "rankQualifiedAt": (str, type(None)),
    "assignedRank": (str, type(None)),
    "isFounder": bool,
    "lastActiveMonth": (str, type(None)),
    "pioneerPurchasesCount": int,
    "hasPioneerBonus": bool,
}
BRANCH_KEYS = ("referralTelegramId", "referralName", "referralUserId", "fullVolume", "cappedVolume", "isCapped")


def test_the_platforms_model_reads_every_documented_key_of_what_the_recompute_wrote(platform):
    with platform.connect_raw() as c:
        c.execute("""UPDATE users SET firstname = 'Ann' WHERE "userID" = 3""")
    assert nightly(platform).users_written == 3
    with Session(platform.engine) as session:
        users = {u.userID: u for u in session.query(User).order_by(User.userID)}
        for user in users.values():
            status, volumes, total = user.mlmStatus, user.mlmVolumes, user.totalVolume
            assert set(DEFAULT_DOCUMENTS["mlmStatus"]) <= set(status)
            for key, types in STATUS_TYPES.items():
                assert isinstance(status[key], types), (user.userID, key, status[key])
            assert set(DEFAULT_DOCUMENTS["mlmVolumes"]) <= set(volumes)
            assert isinstance(volumes["autoship"]["enabled"], bool)
            assert Decimal(str(volumes["personalTotal"])) == user.personalVolumeTotal
            assert Decimal(volumes["monthlyPV"]) >= 0
            for key in TOTAL_VOLUME_KEYS:
                assert key in total, (user.userID, key)
            for branch in total["branches"]:
                assert set(branch) == set(BRANCH_KEYS)
            assert Decimal(str(total["fullVolume"])) == user.fullVolume == user.teamVolumeTotal
            assert total["currentRank"] == user.rank
        # What the platform shows: the founder keeps its flag, the sponsor sees its referral by name.
        assert users[2].mlmStatus["isFounder"] is True
        assert users[3].mlmStatus["isFounder"] is False and users[3].mlmStatus["assignedRank"] is None
        assert users[2].totalVolume["branches"] == [
            {"referralTelegramId": 9002, "referralName": "Ann", "referralUserId": 3, "fullVolume": 5000.00, "cappedVolume": 5000.00, "isCapped": False}
        ]
        # A stored value wins over the default, whole: the recompute does not own autoship, and a
        # stored autoship without its amount is the platform's to fix (the audit names it).
        assert users[2].mlmVolumes["autoship"] == {"enabled": True}
        assert users[3].mlmVolumes["autoship"] == {"enabled": False, "amount": 200}
    assert nightly(platform).users_written == 0
