"""The demo users' stored values as Polars expressions over their random draws (``db.demo``).

The platform's default documents (its models' Python defaults, the documented shapes of
``db.document_shapes``), the stale documents a platform that lost writes holds, and the
helpers they share. Every expression reads the draws' columns (one row per user) and renders
JSON text column-wise (``transforms.json_text``), never through Python objects.
"""

from __future__ import annotations

import numpy as np
import polars as pl

import transforms.json_text as js
from transforms.money import cents_text

# The admin who granted founder status and assigned ranks (the root's userID).
ADMIN_USER_ID = 1
RANKS = ("start", "builder", "growth", "leadership", "director")
ASSIGNABLE_RANKS = RANKS[1:]
KYC_STATUSES = ("not_started", "pending", "verified", "rejected")
STRATEGIES = ("manual", "safe", "aggressive", "risky")
AUTOSHIP_AMOUNTS_USD = (100, 200, 500, 1000)
DEFAULT_AUTOSHIP_USD = 200

# The platform's Python defaults of its documents (the README's documented shapes).
DEFAULT_MLM_STATUS = (
    '{"rankQualifiedAt":null,"assignedRank":null,"isFounder":false,'
    '"lastActiveMonth":null,"pioneerPurchasesCount":0,"hasPioneerBonus":false}'
)
DEFAULT_MLM_VOLUMES = f'{{"personalTotal":0.0,"monthlyPV":0.0,"autoship":{{"enabled":false,"amount":{DEFAULT_AUTOSHIP_USD}}}}}'

_ISO_UTC = "%Y-%m-%dT%H:%M:%S.000Z"


def coded(column: str, names: tuple) -> pl.Expr:
    """The name an integer code column stands for."""
    return pl.col(column).replace_strict(dict(enumerate(names)), return_dtype=pl.String)


def rank_name() -> pl.Expr:
    """The rank a founder was assigned."""
    return coded("rank_code", ASSIGNABLE_RANKS)


def month_key() -> pl.Expr:
    """A stale month the documents mention, as ``YYYY-MM``."""
    return pl.from_epoch(pl.col("stale_month"), time_unit="s").dt.strftime("%Y-%m")


def iso_utc(column: str) -> pl.Expr:
    """Epoch seconds as the platform's ISO-8601 UTC text ("2025-03-04T10:00:00.000Z")."""
    return pl.from_epoch(pl.col(column), time_unit="s").dt.strftime(_ISO_UTC)


def whole_dollars(cents: pl.Expr) -> pl.Expr:
    """Integer cents as whole dollars (the stale numbers are whole dollars, so exact)."""
    return cents // 100


def mlm_volumes_json() -> pl.Expr:
    """``mlmVolumes`` text of a user with autoship on, or with stale volumes (and grace-day keys the
    recompute must keep): the default's keys, the stale user's volumes, its autoship settings."""
    on = pl.col("autoship_on")
    chosen_usd = pl.col("autoship_code").replace_strict(dict(enumerate(AUTOSHIP_AMOUNTS_USD)), return_dtype=pl.Int64)
    stale = pl.col("has_volumes")
    return js.obj(
        js.member("personalTotal", pl.when(stale).then(js.number(whole_dollars(pl.col("total_cents")))).otherwise(pl.lit("0.0"))),
        js.member("monthlyPV", pl.when(stale).then(js.string(cents_text(pl.col("monthly_cents")))).otherwise(pl.lit("0.0"))),
        js.member(
            "autoship",
            js.obj(
                js.member("enabled", js.boolean(on)),
                js.member("amount", js.number(pl.when(on).then(chosen_usd).otherwise(pl.lit(DEFAULT_AUTOSHIP_USD)))),
            ),
        ),
        js.member("graceDayStreak", js.number(pl.col("grace_streak")), when=stale),
        js.member("lastGraceDayMonth", js.string(month_key()), when=stale),
    )


def mlm_status_json() -> pl.Expr:
    """``mlmStatus`` text of a founder (a handful with an assigned rank) or a user with a stale
    lastActiveMonth: the default's keys, plus the founder's keys the recompute must keep."""
    founder, assigned = pl.col("founder"), pl.col("assigned")
    return js.obj(
        js.member("rankQualifiedAt", js.NULL),
        js.member("assignedRank", pl.when(assigned).then(js.string(rank_name())).otherwise(js.NULL)),
        js.member("isFounder", js.boolean(founder)),
        js.member("lastActiveMonth", js.string(month_key())),
        js.member("pioneerPurchasesCount", pl.lit("0")),
        js.member("hasPioneerBonus", pl.lit("false")),
        js.member("founderGrantedAt", js.string(iso_utc("granted_at")), when=founder),
        js.member("founderGrantedBy", pl.lit(str(ADMIN_USER_ID)), when=founder),
        js.member("assignedBy", pl.lit(str(ADMIN_USER_ID)), when=assigned),
        js.member("assignedAt", js.string(iso_utc("assigned_at")), when=assigned),
    )


def total_volume_json() -> pl.Expr:
    """A stale ``totalVolume`` text as the online code left it (start rank, builder next)."""
    full = whole_dollars(pl.col("full_cents"))
    qualifying = pl.min_horizontal(full, pl.lit(50_000))
    return pl.struct(
        qualifyingVolume=qualifying,
        fullVolume=full,
        requiredForNextRank=pl.lit(50_000),
        gap=pl.lit(50_000) - qualifying,
        nextRank=pl.lit("builder"),
        currentRank=pl.lit("start"),
        capLimit=pl.lit(25_000),
        branches=pl.lit([], dtype=pl.List(pl.Int64)),
        calculatedAt=iso_utc("calculated_at"),
    ).struct.json_encode()


def plain_string(value: pl.Expr) -> pl.Expr:
    """A JSON string of a text that holds no quote, backslash or control character (times, codes, hex), unescaped."""
    return pl.concat_str(pl.lit('"'), value, pl.lit('"'))


def personal_data_json() -> pl.Expr:
    """``personalData`` text (a document the recompute never writes): the EULA, whether the profile is filled, KYC."""
    kyc = pl.col("kyc_code")
    verified = kyc == KYC_STATUSES.index("verified")
    return js.obj(
        js.member("eulaAccepted", pl.lit("true")),
        js.member("eulaVersion", pl.lit('"1.0"')),
        js.member("eulaAcceptedAt", plain_string(iso_utc("eula_at"))),
        js.member("dataFilled", js.boolean(pl.col("has_profile"))),
        js.member(
            "kyc",
            js.obj(
                js.member("status", coded("kyc_code", tuple(f'"{status}"' for status in KYC_STATUSES))),
                js.member("verifiedAt", pl.when(verified).then(plain_string(iso_utc("kyc_verified_at"))).otherwise(js.NULL)),
                js.member("documents", pl.when(kyc > 0).then(pl.lit('["passport"]')).otherwise(pl.lit("[]"))),
                js.member("level", pl.when(verified).then(pl.lit("1")).otherwise(pl.lit("0"))),
            ),
        ),
    )


def email_verification_json() -> pl.Expr:
    """``emailVerification`` text (a document the recompute never writes): the confirmation mail and its outcome."""
    confirmed = pl.col("email_confirmed")
    return js.obj(
        js.member("confirmed", js.boolean(confirmed)),
        js.member("token", plain_string(pl.col("email_token"))),
        js.member("sentAt", plain_string(iso_utc("email_sent_at"))),
        js.member("confirmedAt", pl.when(confirmed).then(plain_string(iso_utc("email_confirmed_at"))).otherwise(js.NULL)),
        js.member("attempts", pl.col("email_attempts").cast(pl.String)),
    )


def settings_json() -> pl.Expr:
    """``settings`` text (a document the recompute never writes): strategy, notifications, display."""
    # Only len(STRATEGIES) x 2^3 documents exist: render those few and look each user's up.
    code = pl.col("strategy_code").cast(pl.Int64) * 8 + (
        pl.col("notify_bonus").cast(pl.Int64) * 4 + pl.col("notify_purchase").cast(pl.Int64) * 2 + pl.col("show_balance").cast(pl.Int64)
    )
    return code.replace_strict(dict(enumerate(settings_texts())), return_dtype=pl.String)


def settings_texts() -> list[str]:
    """Every possible ``settings`` text, by code (strategy x 8 + bonus x 4 + purchase x 2 + showBalance)."""
    combinations = pl.DataFrame({"code": np.arange(len(STRATEGIES) * 8)}).select(
        (pl.col("code") // 8).alias("strategy_code"),
        ((pl.col("code") // 4) % 2 == 1).alias("notify_bonus"),
        ((pl.col("code") // 2) % 2 == 1).alias("notify_purchase"),
        (pl.col("code") % 2 == 1).alias("show_balance"),
    )
    document = js.obj(
        js.member("strategy", js.string(coded("strategy_code", STRATEGIES))),
        js.member(
            "notifications",
            js.obj(js.member("bonus", js.boolean(pl.col("notify_bonus"))), js.member("purchase", js.boolean(pl.col("notify_purchase")))),
        ),
        js.member("display", js.obj(js.member("showBalance", js.boolean(pl.col("show_balance"))))),
    )
    return combinations.select(document).to_series().to_list()
