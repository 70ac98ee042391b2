"""Money as exact integer cents, and its text at the edges."""

from __future__ import annotations

from decimal import Decimal

import polars as pl

_CENT = pl.lit(Decimal("0.01"), dtype=pl.Decimal(38, 2))


def cents_text(cents: pl.Expr) -> pl.Expr:
    """Integer cents as a decimal string with two places (``125050`` -> ``"1250.50"``), exactly:
    the cents become a Decimal scaled by 0.01, never a float."""
    return (cents.cast(pl.Decimal(38, 0)) * _CENT).cast(pl.Decimal(38, 2)).cast(pl.String)
