"""``import jmarl`` must not load torch, tianshou, pettingzoo, gymnasium or bridge."""

from __future__ import annotations

import subprocess
import sys


def test_import_jmarl_loads_no_torch_or_bridge_dependencies() -> None:
    code = (
        "import sys, jmarl, jmarl.cli, jmarl.run.driver\n"
        "bad = [m for m in ('torch', 'tianshou', 'pettingzoo', 'gymnasium', 'bridge') "
        "if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
