"""db.periods.month_bounds: a month's first instant and the next month's, December into January."""

from __future__ import annotations

from datetime import datetime

import pytest

from db.periods import month_bounds


@pytest.mark.parametrize(
    "period, start, end",
    [
        ("2025-01", datetime(2025, 1, 1), datetime(2025, 2, 1)),
        ("2025-11", datetime(2025, 11, 1), datetime(2025, 12, 1)),
        ("2025-12", datetime(2025, 12, 1), datetime(2026, 1, 1)),  # the year turns
        ("2024-02", datetime(2024, 2, 1), datetime(2024, 3, 1)),
    ],
)
def test_month_bounds(period, start, end):
    assert month_bounds(period) == (start, end)
