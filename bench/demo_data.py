"""How long the demo platform takes to generate and load, and how much memory it needs.

    python -m bench.demo_data --users 100000 1000000 --per-user 10 --months 12

For each size: a scratch database on the configured server (``MLM_DATABASE_URL``, else the
embedded one in ``MLM_DATA_DIR``), migrated, loaded, and dropped afterwards. The load overlaps
the generation, as ``generate_and_load`` does (each table is COPYed while the next is made):
"generate s" is until the last frame is made (the load running meanwhile), "load s" the rest
of the load after it (indexes, statistics, commit). Peak RSS is this process's (the generator
and the COPY client; the server is another process), sampled while the size runs.
"""

from __future__ import annotations

import gc
import os
import time
from dataclasses import dataclass
from pathlib import Path


from bench.common import PeakMemory, sized_parser
from db.connection import scratch_database, server_uri
from db.demo import DemoLoader, demo_frames
from db.migrate import prepare


@dataclass(frozen=True)
class Measurement:
    """One benchmark row: one generated-and-loaded demo size."""

    users: int
    purchases: int
    bonuses: int
    generate_s: float
    load_s: float
    peak_rss_mb: float

    @property
    def total_s(self) -> float:
        return self.generate_s + self.load_s

    @property
    def rows_per_s(self) -> float:
        return (self.users + self.purchases + self.bonuses) / self.total_s


def measurement(server: str, users: int, months: int, per_user: float, seed: int, end_month: str) -> Measurement:
    """Generate and load one demo size into a scratch database; its timings and peak memory."""
    with scratch_database(server, prefix="mlm_bench_demo") as db:
        prepare(db.engine)
        gc.collect()
        with PeakMemory() as rss:
            started = time.perf_counter()
            with DemoLoader(db) as loader:
                data = demo_frames(users, months, seed, end_month=end_month, purchases_per_user=per_user, on_table=loader.load)
                generated = time.perf_counter()
            loaded = time.perf_counter()
            purchases, bonuses = data.purchases.height, data.bonuses.height
            del data
    return Measurement(users, purchases, bonuses, generated - started, loaded - generated, rss.peak)


def table(rows: list[Measurement]) -> str:
    """The measurements as a plain-text table: one line per size."""
    header = (
        f"{'users':>10} {'purchases':>11} {'bonuses':>10} {'generate s':>10} {'load s':>8} {'total s':>8} "
        f"{'rows/s':>10} {'peak RSS MB':>11}"
    )
    lines = [header, "-" * len(header)]
    for m in rows:
        lines.append(
            f"{m.users:>10,} {m.purchases:>11,} {m.bonuses:>10,} {m.generate_s:>10.1f} {m.load_s:>8.1f} "
            f"{m.total_s:>8.1f} {m.rows_per_s:>10,.0f} {m.peak_rss_mb:>11,.0f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = sized_parser(__doc__.splitlines()[0])
    parser.add_argument("--end-month", default="2025-10")
    args = parser.parse_args(argv)
    data_dir = Path(os.environ.get("MLM_DATA_DIR", ".mlm/pgdata"))
    rows = []
    with server_uri(os.environ.get("MLM_DATABASE_URL"), data_dir) as server:
        for users in args.users:
            rows.append(measurement(server, users, args.months, args.per_user, args.seed, args.end_month))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(table(rows))


if __name__ == "__main__":
    main()
