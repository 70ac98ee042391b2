"""Fingerprints: one 64-bit hash per row of what a run computed, so a later run can tell, without
sending or comparing the values again, that nothing moved.

A fingerprint is only ever used to *skip* work: when it differs (or is missing, or comes from
another ``HASH_VERSION``), the full comparison at the database decides. Polars promises the same
hash only within one version, hence the version in ``HASH_VERSION``.
"""

from __future__ import annotations

import polars as pl

HASH_VERSION = f"polars-{pl.__version__}/1"

# Seeds fixed here, so the same values hash the same in every run of this version.
_SEED = 20_251_101


def fingerprint(*columns: str | pl.Expr) -> pl.Expr:
    """A signed 64-bit hash of the row's ``columns`` (nulls included), as PostgreSQL's bigint."""
    return pl.struct(*columns).hash(seed=_SEED).reinterpret(signed=True)
