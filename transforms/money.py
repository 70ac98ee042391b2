"""Money as exact integer cents, and its text at the edges."""

from __future__ import annotations

import polars as pl


def cents_text(cents: pl.Expr) -> pl.Expr:
    """Integer cents as a decimal string with two places (``125050`` -> ``"1250.50"``), exactly."""
    magnitude = cents.abs()
    sign = pl.when(cents < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    return pl.concat_str(
        sign,
        (magnitude // 100).cast(pl.String),
        pl.lit("."),
        (magnitude % 100).cast(pl.String).str.pad_start(2, "0"),
    )
