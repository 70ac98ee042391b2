"""The documented shapes of the six JSON columns of ``users``, as data: what the audit checks.

The source is the platform's model comments (copied in ``shared/platform/README.md`` of the
workspace, which a clone of this project does not have, hence this module), widened only by
what the platform's own specification adds and the recompute itself writes:

* ``mlmStatus``: the pioneer keys (``pioneerGrantedAt``, ``pioneerPurchaseId``,
  ``pioneerNumber``, required once ``hasPioneerBonus`` is true) and the founders' keys
  (``assignedBy``, ``assignedAt``, optional);
* ``mlmVolumes.monthlyPV``: documented as a number (``0.0``); the recompute writes a decimal
  string with two places (``"1500.00"``, ``transforms/documents.py``): both are legal;
* ``totalVolume``: the recompute's provenance (``runId``, ``planVersion``, ``asOf``, optional:
  the platform's own code does not write them).

A key is required unless marked otherwise: every key of a documented default document is there
from the user's creation on (the platform sets its defaults in Python, never in the database).
A key not listed is an unknown key. JSON ``null`` is legal where a key says ``null=True``: where
the documentation shows it, and for ``referralName`` and the founders' keys (explained where
they are declared).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

# When a key must be present.
ALWAYS = "always"
PIONEER = "pioneer"  # when the object's hasPioneerBonus is true
OPTIONAL = "optional"

# The kinds of value a key may hold (the audit turns each into JSON types and an SQL domain).
VALUE_KINDS = (
    "number",
    "integer",  # a whole number (5 or 5.0: JSON does not tell an integer from a float)
    "money",  # a number, or a decimal string with two places
    "boolean",
    "string",
    "iso_time",  # a string: ISO 8601 date and time, with or without a zone
    "month",  # a string: YYYY-MM
    "rank",  # a string: a rank name of the plan
    "pioneer_number",  # an integer 1..the plan's pioneer slots
    "array",  # any array
    "object",  # an object with the declared ``keys``
    "objects",  # an array whose every element is an object with the declared ``keys``
)


@dataclass(frozen=True)
class Key:
    """What one documented key holds: a value of ``kind`` (VALUE_KINDS), or JSON null when
    ``null``; ``one_of`` restricts a string to those values; ``required`` says when the key must
    be there (ALWAYS, PIONEER, OPTIONAL); ``keys`` are the keys inside an ``object``, or inside
    each element of ``objects``."""

    kind: str
    null: bool = False
    required: str = ALWAYS
    one_of: tuple[str, ...] = ()
    keys: Mapping[str, "Key"] = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in VALUE_KINDS:
            raise ValueError(f"unknown value kind {self.kind!r}")
        if bool(self.keys) != (self.kind in ("object", "objects")):
            raise ValueError(f"only an object or an array of objects declares keys ({self.kind!r})")


KYC_STATUSES = ("not_started", "pending", "verified", "rejected")
STRATEGIES = ("manual", "safe", "aggressive", "risky")

MLM_STATUS = {
    "rankQualifiedAt": Key("iso_time", null=True),
    "assignedRank": Key("rank", null=True),
    "isFounder": Key("boolean"),
    "lastActiveMonth": Key("month", null=True),
    "pioneerPurchasesCount": Key("integer"),
    "hasPioneerBonus": Key("boolean"),
    "pioneerGrantedAt": Key("iso_time", required=PIONEER),
    "pioneerPurchaseId": Key("integer", required=PIONEER),
    "pioneerNumber": Key("pioneer_number", required=PIONEER),
    # Who assigned assignedRank, and when; null with it when no rank is assigned.
    "assignedBy": Key("integer", null=True, required=OPTIONAL),
    "assignedAt": Key("iso_time", null=True, required=OPTIONAL),
}

MLM_VOLUMES = {
    "personalTotal": Key("number"),
    "monthlyPV": Key("money"),
    "autoship": Key("object", keys={"enabled": Key("boolean"), "amount": Key("number")}),
}

BRANCH = {
    "referralTelegramId": Key("integer"),
    # The referral's first name (users.firstname), which the platform does not require: null
    # for a referral without one.
    "referralName": Key("string", null=True),
    "referralUserId": Key("integer"),
    "fullVolume": Key("number"),
    "cappedVolume": Key("number"),
    "isCapped": Key("boolean"),
}

TOTAL_VOLUME = {
    "qualifyingVolume": Key("number"),
    "fullVolume": Key("number"),
    "requiredForNextRank": Key("number"),
    "gap": Key("number"),
    "nextRank": Key("rank"),
    "currentRank": Key("rank"),
    "capLimit": Key("number"),
    "branches": Key("objects", keys=BRANCH),
    "calculatedAt": Key("iso_time"),
    "runId": Key("integer", required=OPTIONAL),
    "planVersion": Key("string", required=OPTIONAL),
    "asOf": Key("iso_time", required=OPTIONAL),
}

PERSONAL_DATA = {
    "eulaAccepted": Key("boolean"),
    "eulaVersion": Key("string"),
    "eulaAcceptedAt": Key("iso_time"),
    "dataFilled": Key("boolean"),
    "kyc": Key(
        "object",
        keys={
            "status": Key("string", one_of=KYC_STATUSES),
            "verifiedAt": Key("iso_time", null=True),
            "documents": Key("array"),
            "level": Key("integer"),
        },
    ),
}

EMAIL_VERIFICATION = {
    "confirmed": Key("boolean"),
    "token": Key("string"),
    "sentAt": Key("iso_time"),
    "confirmedAt": Key("iso_time", null=True),
    "attempts": Key("integer"),
}

SETTINGS = {
    "strategy": Key("string", one_of=STRATEGIES),
    "notifications": Key("object", keys={"bonus": Key("boolean"), "purchase": Key("boolean")}),
    "display": Key("object", keys={"showBalance": Key("boolean")}),
}

# Column -> its documented keys, in the order the audit reports them.
SHAPES: Mapping[str, Mapping[str, Key]] = MappingProxyType(
    {
        "mlmStatus": MLM_STATUS,
        "mlmVolumes": MLM_VOLUMES,
        "totalVolume": TOTAL_VOLUME,
        "personalData": PERSONAL_DATA,
        "emailVerification": EMAIL_VERIFICATION,
        "settings": SETTINGS,
    }
)

# The documents a user starts with where the platform's model comments give the values (a new
# user's mlmStatus and mlmVolumes); the other four columns are documented by their keys, or
# with elided values ("..."), only.
DEFAULT_DOCUMENTS: Mapping[str, dict] = MappingProxyType(
    {
        "mlmStatus": {
            "rankQualifiedAt": None,
            "assignedRank": None,
            "isFounder": False,
            "lastActiveMonth": None,
            "pioneerPurchasesCount": 0,
            "hasPioneerBonus": False,
        },
        "mlmVolumes": {"personalTotal": 0.0, "monthlyPV": 0.0, "autoship": {"enabled": False, "amount": 200}},
    }
)


def default_document(column: str) -> dict:
    """A fresh copy of the platform's default document of ``column`` (one of DEFAULT_DOCUMENTS)."""
    return copy.deepcopy(DEFAULT_DOCUMENTS[column])
