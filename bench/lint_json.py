"""Benchmark: ``lint-json`` over a generated tree of 1,000 Python files.

    python -m bench.lint_json [--files 1000] [--seed 1] [--keep DIR]

The tree (in a temporary folder) is the platform fixture's ``models.py`` and ``schemas.py`` plus service modules
made from the fixture's services (functions renamed per module, ``# expect: JSN001`` markers kept)
and ordinary bot code that touches no JSON column, so the run is also scored: the findings must be
exactly the marked lines. Prints files, lines, findings, precision, recall and the wall time.
"""

from __future__ import annotations

import argparse
import ast
import gc
import random
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from guard.json_mutations import lint_paths

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "guard" / "fixtures" / "platform"
MARKER = re.compile(r"#\s*expect:\s*JSN001")

# Ordinary bot code: dicts and lists changed in place that are not JSON columns (precision at scale).
ORDINARY = '''
class {name}Handler:
    def __init__(self, bot, texts):
        self.bot = bot
        self.texts = texts
        self.cache = {{}}
        self.data = {{"calls": 0}}

    def remember(self, key, value):
        self.cache[key] = value
        self.data["calls"] += 1

    def render(self, user, lang="en"):
        lines = []
        payload = {{"chat_id": user.telegramID, "text": ""}}
        for key in ("greeting", "balance", "rank"):
            lines.append(self.texts.get(lang, {{}}).get(key, key))
        payload["text"] = "\\n".join(lines)
        payload.setdefault("parse_mode", "HTML")
        return payload

    def keyboard(self, buttons):
        rows = [[]]
        for button in buttons:
            if len(rows[-1]) == 3:
                rows.append([])
            rows[-1].append({{"text": button, "callback_data": button}})
        return {{"inline_keyboard": rows}}


def {name}_format_money(value):
    whole, _, cents = f"{{value:.2f}}".partition(".")
    groups = []
    while whole:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    return " ".join(groups) + "." + cents


def {name}_parse_command(text):
    parts = text.strip().split()
    options = {{}}
    for part in parts[1:]:
        if "=" in part:
            key, value = part.split("=", 1)
            options[key] = value
    return parts[0] if parts else "", options


def {name}_summary(user, purchases):
    totals = {{"count": 0, "sum": 0}}
    for purchase in purchases:
        totals["count"] += 1
        totals["sum"] += purchase.packPrice * purchase.packQty
    report = {{"user": user.userID, **totals}}
    del report["count"]
    return report
'''


def _renamed(text: str, suffix: str) -> str:
    """A service module with each of its own top-level functions renamed, calls included."""
    names = re.findall(r"^def (\w+)\(", text, flags=re.MULTILINE)
    for name in sorted(names, key=len, reverse=True):
        text = re.sub(rf"\b{name}\b", f"{name}{suffix}", text)
    return text


def generate(root: Path, files: int, seed: int) -> tuple[int, int]:
    """Write the tree; (lines written, markers written)."""
    rng = random.Random(seed)
    services = sorted((FIXTURE / "services").glob("*.py"))
    templates = [path.read_text() for path in services]
    total_lines = markers = 0
    for shared in ("models.py", "schemas.py"):
        shutil.copy(FIXTURE / shared, root / shared)
        lines = (root / shared).read_text().splitlines()
        total_lines += len(lines)
        markers += sum(bool(MARKER.search(line)) for line in lines)
    for i in range(2, files):
        folder = root / f"pkg{i % 20:02d}"
        folder.mkdir(exist_ok=True)
        if rng.random() < 0.5:
            text = _renamed(rng.choice(templates), f"_{i}") + ORDINARY.format(name=f"m{i}")
        else:
            text = "from models import User\n" + "".join(ORDINARY.format(name=f"m{i}_{k}") for k in range(3))
        (folder / f"module_{i}.py").write_text(text)
        lines = text.splitlines()
        total_lines += len(lines)
        markers += sum(bool(MARKER.search(line)) for line in lines)
    return total_lines, markers


def _parse_seconds(root: Path) -> float:
    """How long parsing every file takes on its own (the floor under any ast-based check)."""
    texts = [path.read_text() for path in sorted(root.rglob("*.py"))]
    gc.disable()
    try:
        started = time.perf_counter()
        for text in texts:
            ast.parse(text)
        return time.perf_counter() - started
    finally:
        gc.enable()


def main(argv: list[str] | None = None) -> int:
    """Generate, lint, score, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="write the tree here instead of a temporary folder")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lintjson") as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        lines, markers = generate(root, args.files, args.seed)
        parse_only = _parse_seconds(root)
        started = time.perf_counter()
        report = lint_paths([root])
        elapsed = time.perf_counter() - started
        found = {(f.path, f.line) for f in report.findings}
        marked = {
            (str(path), n)
            for path in root.rglob("*.py")
            for n, line in enumerate(path.read_text().splitlines(), 1)
            if MARKER.search(line)
        }
    hits = len(found & marked)
    precision = hits / len(found) if found else 1.0
    recall = hits / len(marked) if marked else 1.0
    print(f"files {report.files:,}, lines {lines:,}, parse errors {len(report.errors)}")
    print(f"findings {len(found):,}, marked {markers:,}, precision {precision:.3f}, recall {recall:.3f}")
    print(f"lint-json took {elapsed:.2f} s ({elapsed / max(report.files, 1) * 1000:.2f} ms per file); "
          f"CPython's ast.parse of the same files alone takes {parse_only:.2f} s")
    return 0 if (precision, recall) == (1.0, 1.0) and not report.errors else 1


if __name__ == "__main__":
    sys.exit(main())
