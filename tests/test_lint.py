"""The code base stays ruff-clean (lint rules in pyproject.toml), and no test skips silently.

ruff is part of the ``test`` extra, so it is run from the interpreter running the tests: a
missing ruff is an error, never a skip.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_check_passes() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "jmarl", "bridge", "tests", "benchmarks", "tools"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr


# Skips that hide breakage: a test-only dependency belongs in the ``test`` extra and is imported
# plainly; the project's own modules are never optional.
SILENT_SKIPS = re.compile(r"importorskip\(|mark\.skipif\(|pytest\.skip\(|mark\.skip\(")


def test_no_test_skips_itself() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if path.name != Path(__file__).name
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if SILENT_SKIPS.search(line)
    ]
    assert not offenders, "tests that can skip silently:\n" + "\n".join(offenders)
