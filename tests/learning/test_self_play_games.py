"""Self-play learning on two-player games through ``jmarl train`` (slow: minutes each).

Kuhn poker: the exact NashConv of the pool's mixture (uniform play: 11/12) with the entropy-
regularised self-play recipe of ``benchmarks/poker_self_play.py``. Tic-tac-toe: the trained
policy against uniformly random play, from either seat.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from jmarl.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from poker_self_play import RECIPE

pytestmark = pytest.mark.slow


def test_kuhn_self_play_pool_nash_conv_falls_below_0_1(tmp_path: Path) -> None:
    # measured: 0.04 after 6000 updates (~4.5 minutes on one core); uniform play 0.917
    out = tmp_path / "kuhn"
    argv = ["train", "--env", "kuhn_poker", *RECIPE, "--steps", str(6000 * 2048)]
    assert main([*argv, "--log-every", "500", "--out", str(out), "--quiet"]) == 0
    rows = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["nash_conv_pool"] <= 0.1


def test_tic_tac_toe_self_play_beats_random_play_from_either_seat(tmp_path: Path, capsys) -> None:
    # measured (benchmarks/board_self_play.py): win-or-draw 0.95-0.96 per seat at 5M steps
    from board_self_play import RECIPE as BOARD_RECIPE

    out = tmp_path / "ttt"
    argv = ["train", "--env", "tic_tac_toe", *BOARD_RECIPE, "--steps", "5000000"]
    assert main([*argv, "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out), "--episodes", "1000", "--deterministic"]) == 0
    report = json.loads(capsys.readouterr().out)
    for win, draw in zip(report["win_rate_per_seat"], report["draw_rate_per_seat"], strict=True):
        assert win + draw >= 0.95
