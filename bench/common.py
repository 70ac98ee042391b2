"""What the benchmarks share: the demo sizes they take, and peak memory while a block runs."""

from __future__ import annotations

import argparse
import threading
import time

import psutil


class PeakMemory:
    """The process's peak resident memory (MB) while the block runs, sampled every 20 ms."""

    def __init__(self):
        self.peak = 0.0
        self._stop = threading.Event()

    def __enter__(self):
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        process = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, process.memory_info().rss / 2**20)
            time.sleep(0.02)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def sized_parser(description: str) -> argparse.ArgumentParser:
    """A parser with the demo sizes every benchmark takes (users, purchases per user, months, seed)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--users", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--per-user", type=float, default=10.0, help="average purchases per user")
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1)
    return parser
