"""A reproducible demo platform: a skewed referral tree, months of purchases, stale documents.

The generator builds the platform's two source tables as Polars frames, entirely with
vectorized numpy/Polars operations (no Python loop over users or purchases), from one seeded
``numpy.random.default_rng``: the same arguments always give the same frames. The loader puts
them into empty ``users``/``purchases`` tables with PostgreSQL COPY in one transaction.

What the data looks like, and why:

- **Tree.** User 1 is the root (telegramID 1,000,000,000, its upline is itself). Every other
  user's sponsor is an earlier user, so there are no cycles and the root reaches everyone. A
  sponsor is drawn in proportion to a static, heavy-tailed "recruiting power" (30% of users
  recruit at all, with Pareto weights), mostly among recently joined users (which makes the
  tree deep: into the thirties at 10k users) and otherwise among all earlier ones (which, with
  the heavy tail, makes hubs with hundreds of referrals); 1.5% of users join under the root directly, as on a
  platform whose default referrer is the root. Because the weights are static, each user's
  sponsor is one ``searchsorted`` on a cumulative sum: no sequential preferential attachment.
  Three explicit chains of 55-80 users (one referral each, joined at random times) hang below
  random users, so some users sit more than 50 levels below the root (the plan's depth limit).
- **Purchases.** Over ``months`` calendar months ending with ``end_month``. Users fall into
  segments (never buy, occasional, regular, every month); a user buys only from the month it
  joined, never before its ``createdAt``. Active months get one purchase plus a Poisson number
  more, in proportion to a per-user intensity, so the average is about ``purchases_per_user``
  over the period. Packs of 50..10,000 USD, skewed toward small packs; 3% are >= 5,000 USD, so
  pioneer candidates are plentiful. Prices are integer cents rendered as decimal strings.
- **Stored state.** As on a platform whose writes were lost: scalar MLM columns mostly zero,
  JSON documents mostly NULL, and ~1-2% of users with stale documents that carry keys the
  recompute must preserve (grace-day streaks, autoship, founders, assigned ranks).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import polars as pl
import psycopg
from psycopg import sql

from db.connection import Database
from db.copy import copy_frame
from db.schema import FOREIGN_DOCUMENTS, OWNED_USER_COLUMNS
from transforms.money import cents_text

ROOT_TELEGRAM_ID = 1_000_000_000
# The admin who granted founder status and assigned ranks (the root's userID).
ADMIN_USER_ID = 1

PACK_PRICES_USD = (50, 100, 200, 500, 1000, 2500, 5000, 10000)
# Odds in percent, skewed toward small packs; the two packs at or above the pioneer threshold
# (5,000) make 3% of purchases.
PACK_PERCENT = (30, 25, 18, 12, 8, 4, 2, 1)

# Users join over this many months before the purchase window, and during it.
HISTORY_MONTHS = 12

# Tree shape (tuned over many seeds: at 10k users 5-9 sponsors have >= 100 referrals, ~78% of
# users have none, and the tree is 24-37 levels deep; at 1M users, 50-62 levels without the
# long chains, and the largest sponsors have thousands of referrals).
RECRUITER_SHARE = 0.30  # users who ever recruit
RECRUITER_PARETO_SHAPE = 1.2  # heavy tail of recruiting power ...
# ... capped, so one lucky recruiter cannot absorb every recent draw for long and flatten the
# tree (uncapped, the depth at 10k users swings between ~15 and ~40 from seed to seed).
RECRUITER_POWER_CAP = 3_000.0
ROOT_DIRECT_SHARE = 0.015  # users who joined without a referral link: under the root
RECENT_SHARE = 0.75  # sponsors drawn among recently joined recruiters ...
RECENT_SPAN = 0.25  # ... those among the latest 25% of the users joined so far
LONG_CHAINS = 3
LONG_CHAIN_LENGTHS = (55, 80)  # each chain's length is drawn in [55, 80)

# Buying segments: share of users, and each segment's chance of buying in a given month.
SEGMENT_SHARES = (0.20, 0.45, 0.25, 0.10)  # never, occasional, regular, every month
SEGMENT_MONTHLY_CHANCE = (0.0, 0.15, 0.50, 1.0)

# Shares of users holding each kind of stored document (the rest are NULL).
VOLUMES_SHARE = 0.02
FOUNDER_SHARE = 0.015
STALE_STATUS_SHARE = 0.01
TOTAL_VOLUME_SHARE = 0.015
PERSONAL_DATA_SHARE = 0.05
SETTINGS_SHARE = 0.04
EMAIL_VERIFICATION_SHARE = 0.03
ASSIGNED_RANK_USERS = 6  # a handful of founders hold a rank assigned by the admin
ASSIGNABLE_RANKS = ("builder", "growth", "leadership", "director")
COUNTRIES = ("DE", "RU", "UA", "KZ", "TR", "AE", "US")
LANGUAGES = ("en", "ru", "de", "tr")

# Rows per CSV chunk fed to COPY: bounds the client's memory at a few tens of MB per chunk.
COPY_CHUNK_ROWS = 1_000_000

USER_COLUMNS = ("userID", "telegramID", "upline", "createdAt", *OWNED_USER_COLUMNS, *FOREIGN_DOCUMENTS)
PURCHASE_COLUMNS = ("purchaseID", "userID", "packPrice", "createdAt")

_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_ISO_UTC = "%Y-%m-%dT%H:%M:%S.000Z"


@dataclass(frozen=True)
class DemoData:
    """The demo platform's source tables: ``users`` (one row per user), ``purchases`` (one per purchase).

    Columns are named exactly as the platform's SQL columns. Money columns are decimal strings
    rendered from integer cents ("1500.00"); JSON columns are JSON text or null; timestamps are
    naive UTC datetimes.
    """

    users: pl.DataFrame
    purchases: pl.DataFrame


# --- the generator ---------------------------------------------------------------------------


def demo_frames(
    users: int,
    months: int,
    seed: int,
    end_month: str = "2025-10",
    purchases_per_user: float = 10.0,
) -> DemoData:
    """The demo platform for ``seed``: one row per user, one row per purchase, reproducible."""
    if users < 1:
        raise ValueError(f"users must be at least 1 (the root), got {users}")
    if months < 1:
        raise ValueError(f"months must be at least 1, got {months}")
    if purchases_per_user < 0:
        raise ValueError(f"purchases_per_user must not be negative, got {purchases_per_user}")
    rng = np.random.default_rng(seed)
    bounds = month_bounds(end_month, months)
    sponsors = sponsor_index(users, rng)
    joined = join_seconds(users, bounds, rng)
    telegram = telegram_ids(users, rng)
    purchases = purchases_frame(joined, bounds, purchases_per_user, rng)
    stored = stored_state(joined, bounds, rng)
    return DemoData(users=users_frame(sponsors, joined, telegram, stored), purchases=purchases)


def month_bounds(end_month: str, months: int) -> np.ndarray:
    """Epoch seconds of the window's month boundaries: ``months + 1`` values, up to the 1st after ``end_month``."""
    if not _MONTH.match(end_month):
        raise ValueError(f"end_month must be YYYY-MM, got {end_month!r}")
    last = np.datetime64(end_month, "M")
    starts = last - np.arange(months - 1, -2, -1)
    return starts.astype("datetime64[s]").astype(np.int64)


def sponsor_index(users: int, rng: np.random.Generator) -> np.ndarray:
    """Each user's sponsor as a 0-based user index (always an earlier user; the root is its own): one per user."""
    lengths = chain_lengths(users, rng)
    chain_positions = rng.choice(np.arange(max(1, users // 5), users), size=int(lengths.sum()), replace=False)
    is_core = np.ones(users, dtype=bool)
    is_core[chain_positions] = False
    core = np.flatnonzero(is_core)  # sorted, so "earlier in the core" stays "earlier overall"
    sponsors = np.empty(users, dtype=np.int64)
    sponsors[core] = core[core_sponsor_index(len(core), rng)]
    chain_nodes, chain_parents = chain_links(lengths, chain_positions, core, rng)
    sponsors[chain_nodes] = chain_parents
    return sponsors


def chain_lengths(users: int, rng: np.random.Generator) -> np.ndarray:
    """The lengths of the explicit long chains, scaled down to a tenth of the users for tiny demos."""
    lengths = rng.integers(*LONG_CHAIN_LENGTHS, size=LONG_CHAINS)
    budget = (users - 1) // 10
    if lengths.sum() > budget:
        lengths = lengths * budget // lengths.sum()
    return lengths[lengths > 0]


def core_sponsor_index(n: int, rng: np.random.Generator) -> np.ndarray:
    """Sponsors in the main tree, by index among its ``n`` users (index 0, the root, sponsors itself)."""
    index = np.arange(n)
    recruits = rng.random(n) < RECRUITER_SHARE
    power = np.where(recruits, np.minimum(rng.pareto(RECRUITER_PARETO_SHAPE, n) + 1.0, RECRUITER_POWER_CAP), 0.0)
    # The root always has a candidate's weight (so every draw finds a sponsor), but only a
    # small one: its many direct referrals come from ROOT_DIRECT_SHARE, and a heavy root would
    # absorb the early users and flatten the tree.
    power[0] = 1.0
    cumulative = np.cumsum(power)
    # A sponsor is a point drawn uniformly in the recruiting power of the candidates: all users
    # joined before, or (recent draws) those among the latest RECENT_SPAN of them.
    high = cumulative[np.maximum(index - 1, 0)]
    window_start = np.floor(index * (1.0 - RECENT_SPAN)).astype(np.int64)
    recent_low = np.where(window_start > 0, cumulative[np.maximum(window_start - 1, 0)], 0.0)
    low = np.where(rng.random(n) < RECENT_SHARE, recent_low, 0.0)
    target = low + (high - low) * rng.random(n)
    sponsors = np.searchsorted(cumulative, target, side="right")
    # Float rounding can land on the user itself; the user just before is the recent recruiter.
    sponsors = np.minimum(sponsors, np.maximum(index - 1, 0))
    sponsors = np.where(rng.random(n) < ROOT_DIRECT_SHARE, 0, sponsors)
    sponsors[0] = 0
    return sponsors


def chain_links(
    lengths: np.ndarray, positions: np.ndarray, core: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The chain users and their sponsors: the previous chain user, or for a chain's first an earlier core user."""
    if len(positions) == 0:
        return positions, positions
    chain = np.repeat(np.arange(len(lengths)), lengths)
    nodes = positions[np.lexsort((positions, chain))]  # each chain's users in joining order
    first = np.r_[0, np.cumsum(lengths)[:-1]]
    parents = np.r_[-1, nodes[:-1]]
    earlier_core = np.searchsorted(core, nodes[first])  # >= 1: the root is always earlier
    parents[first] = core[(rng.random(len(first)) * earlier_core).astype(np.int64)]
    return nodes, parents


def join_seconds(users: int, bounds: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each user's createdAt (epoch seconds), non-decreasing by userID, from ``history_start`` to the window's end."""
    start = history_start(bounds)
    joined = np.sort(rng.integers(start, bounds[-1], size=users))
    joined[0] = start  # the root was there first
    return joined


def history_start(bounds: np.ndarray) -> int:
    """Epoch seconds of the 1st of the month ``HISTORY_MONTHS`` before the window: when the platform began."""
    first_month = bounds[0].astype("datetime64[s]").astype("datetime64[M]")
    return int((first_month - HISTORY_MONTHS).astype("datetime64[s]").astype(np.int64))


def telegram_ids(users: int, rng: np.random.Generator) -> np.ndarray:
    """Each user's telegramID: unique, increasing with userID, with irregular gaps, never equal to a userID."""
    gaps = rng.integers(1, 5000, size=users)
    gaps[0] = 0
    return ROOT_TELEGRAM_ID + np.cumsum(gaps)


def monthly_chance(users: int, months: int, purchases_per_user: float, rng: np.random.Generator) -> np.ndarray:
    """Each user's chance of buying in a given month (by segment), thinned when the target average is low."""
    segment = rng.choice(len(SEGMENT_SHARES), size=users, p=SEGMENT_SHARES)
    chance = np.asarray(SEGMENT_MONTHLY_CHANCE, dtype=np.float32)[segment]
    expected_active_months = months * float(np.dot(SEGMENT_SHARES, SEGMENT_MONTHLY_CHANCE))
    # Every active month holds at least one purchase, so fewer purchases need fewer active months.
    return chance * np.float32(min(1.0, purchases_per_user / expected_active_months))


def purchases_frame(
    joined: np.ndarray, bounds: np.ndarray, purchases_per_user: float, rng: np.random.Generator
) -> pl.DataFrame:
    """The purchases: one row per purchase, purchaseID 1..N in (createdAt, userID) order."""
    user, month = purchase_user_months(joined, bounds, purchases_per_user, rng)
    created = purchase_seconds(user, month, joined, bounds, rng)
    pack = pack_index(len(user), rng)
    del month
    # Rows are generated user by user, so a stable sort on the time orders ties by userID.
    return (
        pl.DataFrame({"userID": user + 1, "pack": pack, "created": created})
        .sort("created", maintain_order=True)
        .select(
            pl.int_range(1, pl.len() + 1, dtype=pl.Int32).alias("purchaseID"),
            pl.col("userID").cast(pl.Int32),
            pl.col("pack").replace_strict(dict(enumerate(pack_texts())), return_dtype=pl.String).alias("packPrice"),
            pl.from_epoch("created", time_unit="s").alias("createdAt"),
        )
    )


def purchase_user_months(
    joined: np.ndarray, bounds: np.ndarray, purchases_per_user: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Who buys in which month: one (0-based user index, month index) pair per purchase, by user then month."""
    users, months = len(joined), len(bounds) - 1
    chance = monthly_chance(users, months, purchases_per_user, rng)
    intensity = rng.lognormal(0.0, 1.0, size=users)
    joined_before_end = joined[:, None] < bounds[None, 1:]
    active = joined_before_end & (rng.random((users, months), dtype=np.float32) < chance[:, None])
    pair_user, pair_month = np.nonzero(active)  # one per (user, month) with a purchase
    del active, joined_before_end
    # Each active month has one purchase; the rest of the target goes by intensity (Poisson).
    extra = max(0.0, round(users * purchases_per_user) - len(pair_user))
    weight = intensity[pair_user]
    expected_extra = weight * (extra / weight.sum()) if len(weight) else weight
    count = 1 + rng.poisson(expected_extra)
    return np.repeat(pair_user.astype(np.int32), count), np.repeat(pair_month, count)


def purchase_seconds(
    user: np.ndarray, month: np.ndarray, joined: np.ndarray, bounds: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Each purchase's createdAt in epoch seconds: uniform inside its month, never before its user joined."""
    earliest = np.maximum(bounds[month], joined[user])
    span = bounds[month + 1] - earliest
    return earliest + (rng.random(len(user)) * span).astype(np.int64)


def pack_index(purchases: int, rng: np.random.Generator) -> np.ndarray:
    """Each purchase's pack, as an index into ``PACK_PRICES_USD``, drawn with ``PACK_PERCENT`` odds."""
    # The odds are whole percents, so one uniform draw in 0..99 through a 100-slot table is exact.
    slots = np.repeat(np.arange(len(PACK_PRICES_USD), dtype=np.uint8), PACK_PERCENT)
    return slots[rng.integers(0, 100, size=purchases, dtype=np.uint8)]


def pack_texts() -> list[str]:
    """The pack prices as decimal strings rendered from integer cents ("50.00" .. "10000.00")."""
    cents = pl.Series("cents", [usd * 100 for usd in PACK_PRICES_USD], dtype=pl.Int64)
    return pl.select(cents_text(pl.lit(cents))).to_series().to_list()



# --- stored state: scalar MLM columns and JSON documents ---------------------------------------


def stored_state(joined: np.ndarray, bounds: np.ndarray, rng: np.random.Generator) -> pl.DataFrame:
    """The platform's stored rank, scalars and JSON documents: one row per user, mostly zero/NULL."""
    draws = stored_state_draws(joined, bounds, rng)
    return draws.select(
        pl.when("assigned").then(rank_name()).otherwise(pl.lit("start")).alias("rank"),
        (pl.col("has_volumes") & pl.col("was_active")).alias("isActive"),
    ).with_columns(
        sparse_text(draws, "has_total", cents_text(pl.col("full_cents")), default="0.00").alias("fullVolume"),
        sparse_text(draws, "has_total", cents_text(pl.col("full_cents")), default="0.00").alias("teamVolumeTotal"),
        sparse_text(draws, "has_volumes", cents_text(pl.col("total_cents")), default="0.00").alias(
            "personalVolumeTotal"
        ),
        sparse_text(draws, pl.col("founder") | pl.col("stale_status"), mlm_status_json()).alias("mlmStatus"),
        sparse_text(draws, "has_volumes", mlm_volumes_json()).alias("mlmVolumes"),
        sparse_text(draws, "has_total", total_volume_json()).alias("totalVolume"),
        sparse_text(draws, "has_personal", personal_data_json()).alias("personalData"),
        sparse_text(draws, "has_email", email_verification_json()).alias("emailVerification"),
        sparse_text(draws, "has_settings", settings_json()).alias("settings"),
    )


def stored_state_draws(joined: np.ndarray, bounds: np.ndarray, rng: np.random.Generator) -> pl.DataFrame:
    """The random inputs of the stored state: one row per user (flags, stale amounts, times), numbers only."""
    users, window_end = len(joined), bounds[-1]
    granted_at = later_seconds(joined, window_end, rng)
    founder = rng.random(users) < FOUNDER_SHARE
    founder[0] = False  # the root keeps rank "start" and no founder document
    assigned = np.zeros(users, dtype=bool)
    assigned[rng.permutation(np.flatnonzero(founder))[:ASSIGNED_RANK_USERS]] = True
    monthly_cents = rng.integers(0, 40, size=users) * 5_000
    return pl.DataFrame(
        {
            "row": np.arange(users, dtype=np.int64),
            "has_volumes": rng.random(users) < VOLUMES_SHARE,
            "has_autoship": rng.random(users) < 0.5,
            "was_active": rng.random(users) < 0.5,
            "founder": founder,
            "stale_status": (rng.random(users) < STALE_STATUS_SHARE) & ~founder,
            "assigned": assigned,
            "rank_code": rng.integers(0, len(ASSIGNABLE_RANKS), size=users),
            "has_total": rng.random(users) < TOTAL_VOLUME_SHARE,
            "has_personal": rng.random(users) < PERSONAL_DATA_SHARE,
            "has_settings": rng.random(users) < SETTINGS_SHARE,
            "has_email": rng.random(users) < EMAIL_VERIFICATION_SHARE,
            "verified": rng.random(users) < 0.8,
            "monthly_cents": monthly_cents,
            "total_cents": monthly_cents + rng.integers(0, 400, size=users) * 5_000,
            "full_cents": rng.integers(0, 2_000, size=users) * 10_000,
            "grace_streak": rng.integers(0, 6, size=users),
            "autoship_code": rng.integers(0, 5, size=users),
            "stale_month": bounds[rng.integers(0, len(bounds) - 1, size=users)],
            "granted_at": granted_at,
            "assigned_at": later_seconds(granted_at, window_end, rng),
            "calculated_at": later_seconds(np.maximum(joined, bounds[0]), window_end, rng),
            "country_code": rng.integers(0, len(COUNTRIES), size=users),
            "language_code": rng.integers(0, len(LANGUAGES), size=users),
        }
    )


def later_seconds(start: np.ndarray, end: int, rng: np.random.Generator) -> np.ndarray:
    """A time uniform between each ``start`` and ``end`` (epoch seconds): one per element of ``start``."""
    return start + (rng.random(len(start)) * (end - start)).astype(np.int64)


def sparse_text(draws: pl.DataFrame, holders: str | pl.Expr, value: pl.Expr, default: str | None = None) -> pl.Series:
    """``value`` for the rows where ``holders`` is true, ``default`` elsewhere: one text per row of ``draws``.

    Evaluated on the holders only: ~2% of the rows, where a ``when/then`` would render every row.
    """
    held = draws.filter(holders)
    values = held.select(value).to_series()
    return pl.repeat(default, draws.height, dtype=pl.String, eager=True).scatter(held["row"], values)


def coded(column: str, names: tuple[str, ...]) -> pl.Expr:
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
    """Stale ``mlmVolumes`` text, with grace-day and (for half) autoship keys the recompute must keep."""
    fields = {
        "monthlyPV": cents_text(pl.col("monthly_cents")),
        "personalTotal": whole_dollars(pl.col("total_cents")),
        "graceDayStreak": pl.col("grace_streak"),
        "lastGraceDayMonth": month_key(),
    }
    autoship_usd = pl.col("autoship_code").replace_strict(dict(enumerate(PACK_PRICES_USD)), return_dtype=pl.Int64)
    autoship = pl.struct(enabled=pl.col("was_active"), amount=autoship_usd)
    return (
        pl.when("has_autoship")
        .then(pl.struct(**fields, autoship=autoship).struct.json_encode())
        .otherwise(pl.struct(**fields).struct.json_encode())
    )


def mlm_status_json() -> pl.Expr:
    """Stored ``mlmStatus`` text: founders (a handful with an assigned rank), else a stale lastActiveMonth."""
    founder = {
        "isFounder": pl.lit(True),
        "founderGrantedAt": iso_utc("granted_at"),
        "founderGrantedBy": pl.lit(ADMIN_USER_ID),
        "lastActiveMonth": month_key(),
    }
    assigned = {
        "assignedRank": rank_name(),
        "assignedBy": pl.lit(ADMIN_USER_ID),
        "assignedAt": iso_utc("assigned_at"),
    }
    return (
        pl.when("assigned")
        .then(pl.struct(**founder, **assigned).struct.json_encode())
        .when("founder")
        .then(pl.struct(**founder).struct.json_encode())
        .otherwise(pl.struct(lastActiveMonth=month_key()).struct.json_encode())
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


def personal_data_json() -> pl.Expr:
    """``personalData`` text (a document the recompute never writes)."""
    return pl.struct(
        firstName=pl.format("Demo{}", pl.col("row") + 1),
        country=coded("country_code", COUNTRIES),
    ).struct.json_encode()


def email_verification_json() -> pl.Expr:
    """``emailVerification`` text (a document the recompute never writes)."""
    return pl.struct(
        verified=pl.col("verified"),
        verifiedAt=pl.when("verified").then(iso_utc("granted_at")),
    ).struct.json_encode()


def settings_json() -> pl.Expr:
    """``settings`` text (a document the recompute never writes)."""
    return pl.struct(language=coded("language_code", LANGUAGES), notifications=pl.col("verified")).struct.json_encode()


def users_frame(sponsors: np.ndarray, joined: np.ndarray, telegram: np.ndarray, stored: pl.DataFrame) -> pl.DataFrame:
    """The users table: one row per user, userID 1..N in createdAt order, upline = the sponsor's telegramID."""
    identity = pl.DataFrame(
        {
            "userID": pl.Series(np.arange(1, len(telegram) + 1, dtype=np.int32)),
            "telegramID": pl.Series(telegram, dtype=pl.Int64),
            "upline": pl.Series(telegram[sponsors], dtype=pl.Int64),
            "createdAt": pl.Series(joined),
        }
    ).with_columns(pl.from_epoch("createdAt", time_unit="s"))
    return pl.concat([identity, stored], how="horizontal").select(USER_COLUMNS)


# --- the loader --------------------------------------------------------------------------------


def load_demo(db: Database, data: DemoData) -> None:
    """Load the demo frames into empty ``users`` and ``purchases`` tables by COPY, in one transaction."""
    with db.connect_raw(autocommit=True, options="-c timezone=UTC") as conn:
        with conn.transaction():
            # Nobody may add rows between the emptiness check and the load (and the index swap
            # below needs this lock anyway).
            conn.execute("LOCK TABLE users, purchases IN ACCESS EXCLUSIVE MODE")
            refuse_non_empty(conn)
            deferred = [index for table in ("users", "purchases") for index in plain_indexes(conn, table)]
            # The usual bulk-load practice: fill the tables, then build their plain indexes once.
            # At 10M purchases, maintaining purchases("userID") row by row took ~40 s (rows
            # arrive in time order, so the index is written at random), building it after ~10 s.
            # The definitions are restored exactly, inside the same transaction.
            for name, _ in deferred:
                conn.execute(sql.SQL("DROP INDEX {}").format(name))
            copy_frame(conn, "users", data.users.select(USER_COLUMNS), COPY_CHUNK_ROWS)
            copy_frame(conn, "purchases", data.purchases.select(PURCHASE_COLUMNS), COPY_CHUNK_ROWS)
            conn.execute("SET LOCAL maintenance_work_mem = '256MB'")  # sort the index keys in memory
            for _, definition in deferred:
                conn.execute(definition)
            bump_sequence(conn, "users", "userID")
            bump_sequence(conn, "purchases", "purchaseID")
        # Fresh statistics, so the first recompute's queries are planned for the real sizes.
        conn.execute("ANALYZE users, purchases")


def plain_indexes(conn: psycopg.Connection, table: str) -> list[tuple[sql.Identifier, str]]:
    """The table's non-unique indexes that back no constraint: (qualified name, CREATE INDEX statement) each."""
    rows = conn.execute(
        """
        SELECT n.nspname, i.relname, pg_get_indexdef(i.oid)
        FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_namespace n ON n.oid = i.relnamespace
        WHERE x.indrelid = %s::regclass
          AND NOT x.indisunique
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
        ORDER BY i.relname
        """,
        (table,),
    ).fetchall()
    return [(sql.Identifier(schema, name), definition) for schema, name, definition in rows]


def refuse_non_empty(conn: psycopg.Connection) -> None:
    """Raise ValueError when ``users`` or ``purchases`` already holds rows: the demo never mixes with data."""
    for table in ("users", "purchases"):
        query = sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table))
        if conn.execute(query).fetchone()[0]:
            raise ValueError(
                f"refusing to load demo data: table {table!r} already has rows; "
                "load the demo only into an empty database"
            )




def bump_sequence(conn: psycopg.Connection, table: str, column: str) -> None:
    """Move ``table.column``'s id sequence (if it has one) past the loaded ids, so later inserts do not collide."""
    sequence = conn.execute("SELECT pg_get_serial_sequence(%s, %s)", (table, column)).fetchone()[0]
    if sequence is None:
        return
    top = conn.execute(
        sql.SQL("SELECT max({}) FROM {}").format(sql.Identifier(column), sql.Identifier(table))
    ).fetchone()[0]
    if top is not None:
        conn.execute("SELECT setval(%s, %s)", (sequence, top))


def generate_and_load(
    db: Database,
    users: int,
    months: int,
    seed: int,
    purchases_per_user: float = 10.0,
    end_month: str = "2025-10",
) -> DemoData:
    """Generate the demo platform and load it into ``db``; the loaded frames (one row per user / purchase)."""
    data = demo_frames(users, months, seed, end_month=end_month, purchases_per_user=purchases_per_user)
    load_demo(db, data)
    return data
