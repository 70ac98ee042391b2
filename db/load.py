"""Write a recompute's results: whole JSON values merged at the database, in one transaction.

The platform lost writes because it changed JSON values in place through the ORM. Here nothing
is changed in place: the computed documents are COPYed into a staging table and merged into
``users`` by one set-based UPDATE, where ``stored || owned`` keeps every key the recompute does
not own, including keys another client committed after the extract (the UPDATE reads the row as
it is when it locks it). Only users whose owned values differ are written.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import polars as pl
import psycopg

from db.connection import Database
from transforms.documents import PROVENANCE_KEYS
from transforms.money import cents_text
from transforms.recompute import Recomputed

# Owned keys of the merged documents: kept in one place so validation and audit agree.
OWNED_STATUS_KEYS = (
    "lastActiveMonth",
    "rankQualifiedAt",
    "hasPioneerBonus",
    "pioneerGrantedAt",
    "pioneerPurchaseId",
    "pioneerNumber",
    "pioneerPurchasesCount",
)
OWNED_VOLUME_KEYS = ("monthlyPV", "personalTotal")
JSON_COLUMNS = ("mlmStatus", "mlmVolumes", "totalVolume")
LOCK_KEY = 0x6D6C6D72  # "mlmr": one advisory lock for every writing run


class RunLocked(RuntimeError):
    """Another run holds the write lock."""


@dataclass(frozen=True)
class LoadResult:
    users_changed: int
    rank_history_rows: int
    snapshot_rows: int


STAGING_DDL = """
CREATE TEMP TABLE mlm_staging_documents (
    user_id integer PRIMARY KEY,
    rank text NOT NULL,
    is_active boolean NOT NULL,
    full_volume numeric(15, 2) NOT NULL,
    personal_volume_total numeric(12, 2) NOT NULL,
    mlm_volumes jsonb NOT NULL,
    mlm_status jsonb NOT NULL,
    total_volume jsonb NOT NULL,
    rank_rose boolean NOT NULL
) ON COMMIT DROP
"""

_PROVENANCE = "ARRAY[" + ", ".join(f"'{k}'" for k in PROVENANCE_KEYS) + "]"


def json_column_types(connection: psycopg.Connection) -> dict[str, str]:
    """``json`` or ``jsonb`` for each JSON column of ``users``, as this database has them."""
    rows = connection.execute(
        """SELECT column_name, data_type FROM information_schema.columns
           WHERE table_schema = current_schema() AND table_name = 'users' AND column_name = ANY(%s)""",
        [list(JSON_COLUMNS)],
    ).fetchall()
    return {name: kind for name, kind in rows}


def changed_users_sql(types: dict[str, str]) -> str:
    """The set-based merge: owned keys replaced, others kept; only rows whose owned values differ."""
    status, volumes, total = (types[c] for c in JSON_COLUMNS)
    merged_status = """COALESCE(u."mlmStatus"::jsonb, '{}'::jsonb) || s.mlm_status"""
    merged_volumes = """COALESCE(u."mlmVolumes"::jsonb, '{}'::jsonb) || s.mlm_volumes"""
    return f"""
UPDATE users AS u SET
    "rank" = s.rank,
    "isActive" = s.is_active,
    "fullVolume" = s.full_volume,
    "teamVolumeTotal" = s.full_volume,
    "personalVolumeTotal" = s.personal_volume_total,
    "mlmStatus" = ({merged_status})::{status},
    "mlmVolumes" = ({merged_volumes})::{volumes},
    "totalVolume" = s.total_volume::{total}
FROM mlm_staging_documents AS s
WHERE u."userID" = s.user_id
  AND (   u."rank" IS DISTINCT FROM s.rank
       OR u."isActive" IS DISTINCT FROM s.is_active
       OR u."fullVolume" IS DISTINCT FROM s.full_volume
       OR u."teamVolumeTotal" IS DISTINCT FROM s.full_volume
       OR u."personalVolumeTotal" IS DISTINCT FROM s.personal_volume_total
       OR u."mlmStatus"::jsonb IS DISTINCT FROM {merged_status}
       OR u."mlmVolumes"::jsonb IS DISTINCT FROM {merged_volumes}
       OR (u."totalVolume"::jsonb - {_PROVENANCE}::text[]) IS DISTINCT FROM (s.total_volume - {_PROVENANCE}::text[]))
"""


def _csv(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_csv(buffer, include_header=False)
    return buffer.getvalue()



def staged_documents(recomputed: Recomputed) -> pl.DataFrame:
    """The documents as the staging table's columns (money as decimals)."""
    return recomputed.documents.select(
        "user_id",
        "rank",
        "is_active",
        pl.col("full_volume_cents").alias("full_volume"),
        pl.col("personal_volume_total_cents").alias("personal_volume_total"),
        "mlm_volumes",
        "mlm_status",
        "total_volume",
        "rank_rose",
    )


def copy_frame(connection: psycopg.Connection, table: str, frame: pl.DataFrame, chunk_rows: int = 200_000) -> None:
    """COPY ``frame`` into ``table`` (columns by name), in chunks to bound memory."""
    columns = ", ".join(f'"{c}"' for c in frame.columns)
    with connection.cursor().copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT csv)") as copy:
        for chunk in frame.iter_slices(chunk_rows):
            copy.write(_csv(chunk))


def cents_as_decimal_text(frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """Integer-cent columns as exact decimal text, which COPY turns into numeric."""

    return frame.with_columns(cents_text(pl.col(c)).alias(c) for c in columns)


def write_documents(connection: psycopg.Connection, recomputed: Recomputed) -> int:
    """Stage and merge every user's documents; returns how many users were written."""
    connection.execute(STAGING_DDL)
    staged = cents_as_decimal_text(staged_documents(recomputed), ["full_volume", "personal_volume_total"])
    copy_frame(connection, "mlm_staging_documents", staged)
    connection.execute("ANALYZE mlm_staging_documents")
    return connection.execute(changed_users_sql(json_column_types(connection))).rowcount


def write_rank_history(connection: psycopg.Connection, run_id: int) -> int:
    """One rank_history row per user whose rank rose in this run (natural qualification)."""
    return connection.execute(
        """INSERT INTO rank_history ("createdAt", "userID", "previousRank", "newRank", "teamVolume",
                                     "activePartners", "qualificationMethod", "notes")
           SELECT now() AT TIME ZONE 'utc', c.user_id, c.previous_rank, c.new_rank, c.team_volume,
                  c.active_partners, 'natural', 'mlm-recompute run ' || %s
           FROM mlm_staging_rank_changes AS c""",
        [run_id],
    ).rowcount


def stage_rank_changes(connection: psycopg.Connection, recomputed: Recomputed) -> None:
    connection.execute(
        """CREATE TEMP TABLE mlm_staging_rank_changes (
               user_id integer, previous_rank text, new_rank text, team_volume numeric(15, 2), active_partners integer
           ) ON COMMIT DROP"""
    )
    changes = cents_as_decimal_text(recomputed.rank_changes, ["team_volume_cents"]).rename(
        {"team_volume_cents": "team_volume"}
    )
    copy_frame(connection, "mlm_staging_rank_changes", changes)


def write_snapshots(connection: psycopg.Connection, recomputed: Recomputed, run_id: int, *, is_final: bool) -> int:
    """Upsert the period's snapshot rows (one per user); rows that did not change are not rewritten."""
    connection.execute(
        """CREATE TEMP TABLE mlm_staging_snapshots (LIKE mlm_period_snapshots INCLUDING DEFAULTS) ON COMMIT DROP"""
    )
    money = ["personal_volume_total_cents", "monthly_pv_cents", "full_volume_cents", "qualifying_volume_cents"]
    rows = cents_as_decimal_text(recomputed.snapshots, money).rename({c: c.removesuffix("_cents") for c in money})
    rows = rows.with_columns(
        period=pl.lit(recomputed.period),
        run_id=pl.lit(run_id),
        is_final=pl.lit(is_final),
        as_of=pl.lit(recomputed.as_of.isoformat()),
    )
    copy_frame(connection, "mlm_staging_snapshots", rows)
    value_columns = [c for c in rows.columns if c not in ("period", "user_id")]
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in value_columns)
    compared = [c for c in value_columns if c not in ("run_id", "as_of")]
    differs = " OR ".join(f"s.{c} IS DISTINCT FROM EXCLUDED.{c}" for c in compared)
    columns = ", ".join(rows.columns)
    return connection.execute(
        f"""INSERT INTO mlm_period_snapshots AS s ({columns})
            SELECT {columns} FROM mlm_staging_snapshots
            ON CONFLICT (period, user_id) DO UPDATE SET {updates} WHERE {differs}"""
    ).rowcount


def take_write_lock(connection: psycopg.Connection, *, wait: bool) -> None:
    """The transaction-scoped advisory lock every writing run takes: runs never interleave."""
    if wait:
        connection.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
        return
    if not connection.execute("SELECT pg_try_advisory_xact_lock(%s)", [LOCK_KEY]).fetchone()[0]:
        raise RunLocked("another mlm-recompute run is writing to this database; try again when it has finished")


def write_period(db: Database, recomputed: Recomputed, run_id: int, *, is_final: bool = False, wait: bool = True) -> LoadResult:
    """Everything a run writes, in one transaction: rolled back entirely unless it all succeeds."""
    with db.connect_raw() as connection:
        with connection.transaction():
            take_write_lock(connection, wait=wait)
            changed = write_documents(connection, recomputed)
            stage_rank_changes(connection, recomputed)
            history = write_rank_history(connection, run_id)
            snapshots = write_snapshots(connection, recomputed, run_id, is_final=is_final)
    return LoadResult(users_changed=changed, rank_history_rows=history, snapshot_rows=snapshots)
