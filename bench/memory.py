"""Peak resident memory of this process while a block runs."""

from __future__ import annotations

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
