"""Open a page in real headless Chromium (the distribution's package): its console output and a
screenshot. Tests skip when /usr/bin/chromium is missing, unless MLM_REQUIRE_BROWSER=1 (CI),
where a missing browser fails them."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--enable-logging=stderr", "--v=0",
]  # fmt: skip


def require_chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    if os.environ.get("MLM_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{CHROMIUM} is missing and MLM_REQUIRE_BROWSER=1: install it with apt-get install -y chromium")
    pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium); set MLM_REQUIRE_BROWSER=1 to fail instead")


def open_page(page: Path, screenshot: Path, size: str = "1100,2600") -> list[str]:
    """Load ``page`` in a fresh profile, save a screenshot; the page's console lines (every
    message, warning, error or uncaught exception Chromium logs as ``:CONSOLE``)."""
    browser = require_chromium()
    profile = tempfile.mkdtemp(prefix="mlm-chromium-")
    try:
        done = subprocess.run(
            [str(browser), *FLAGS, f"--user-data-dir={profile}", f"--window-size={size}", f"--screenshot={screenshot}", page.resolve().as_uri()],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert screenshot.exists(), f"chromium made no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    return [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


def pixels(screenshot: Path):
    """The screenshot as an RGB float array (rows x columns x 3, 0..1)."""
    import matplotlib.image

    return matplotlib.image.imread(str(screenshot))[..., :3]


def has_colour(image, rgb: tuple[int, int, int], at_least: int = 500, tolerance: float = 0.04) -> bool:
    """Whether at least ``at_least`` pixels have the colour ``rgb`` (a chart's bars drawn)."""
    import numpy as np

    target = np.array(rgb) / 255.0
    return int((np.abs(image - target).max(axis=-1) < tolerance).sum()) >= at_least
