"""Runs that never lose work: refused folders, locks, resume, SIGKILL, Ctrl-C, SIGTERM,
TensorBoard.

The interrupted runs are real ``jmarl train`` processes. A hook (see ``CHILD``) holds the child
still inside its second checkpoint write, so the test can kill it there, at the worst moment:
after the metrics of updates 3-4 were written but before the checkpoint of update 4 (the
folder's checkpoint is still the one of update 2).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from flax import serialization

from jmarl.cli import main
from jmarl.run.checkpoint import CHECKPOINT_NAME
from jmarl.run.folder import LOCK_NAME

REPO = Path(__file__).resolve().parents[2]
TINY = ["--num-envs", "4", "--rollout-length", "25", "--num-minibatches", "2"]
TINY += ["--hidden-sizes", "8", "--quiet"]
SMALL = ["--steps", "400", *TINY]  # 4 updates
# 8 updates of one chunk each, a checkpoint every 2 updates
RESUMABLE = ["--steps", "800", "--log-every", "1", "--checkpoint-every", "2", "--seed", "7"]
RESUMABLE += TINY


def _code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as e:
        return int(e.code or 0)


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def _rows(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def _without_wall_time(run: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in _rows(run)]


def _snapshot(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir()) if p.is_file()}


def _checkpoint_update(run: Path) -> int:
    return int(
        serialization.msgpack_restore((run / CHECKPOINT_NAME).read_bytes())["meta"]["update"]
    )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("uninterrupted") / "run"
    assert main(["train", *RESUMABLE, "--out", str(run)]) == 0
    assert len(_rows(run)) == 8
    return run


# --- folders holding a run ----------------------------------------------------------------


def test_an_out_holding_a_run_is_refused_unless_resume_or_overwrite(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["train", *SMALL, "--out", str(run)]) == 0
    before = _snapshot(run)
    capsys.readouterr()
    assert _code(["train", *SMALL, "--out", str(run)]) == 2
    line = _one_error_line(capsys)
    assert str(run) in line and "--resume" in line and "--overwrite" in line
    assert _snapshot(run) == before  # nothing touched
    # a resumed run must keep its settings: one that differs is refused, naming it
    assert _code(["train", *SMALL, "--out", str(run), "--resume", "--lr", "0.1"]) == 2
    line = _one_error_line(capsys)
    assert "--resume: lr = 0.1 differs" in line and str(run / "config.json") in line
    assert _snapshot(run) == before
    # resuming a finished run trains nothing more and appends nothing
    assert main(["train", "--out", str(run), "--resume", "--quiet"]) == 0
    assert _snapshot(run)["metrics.jsonl"] == before["metrics.jsonl"]
    # --overwrite replaces it: another seed, other metrics, no rows of the old run left
    assert main(["train", *SMALL, "--out", str(run), "--overwrite", "--seed", "9"]) == 0
    assert len(_rows(run)) == 4 and _snapshot(run)["metrics.jsonl"] != before["metrics.jsonl"]
    assert json.loads((run / "config.json").read_text())["seed"] == 9


def test_a_saved_config_used_as_config_trains_into_a_new_folder(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    old = tmp_path / "old"
    assert main(["train", *SMALL, "--out", str(old)]) == 0
    before = _snapshot(old)
    assert main(["train", "--config", str(old / "config.json"), "--quiet"]) == 0
    assert _snapshot(old) == before
    (new,) = (tmp_path / "runs").iterdir()
    assert json.loads((new / "config.json").read_text())["out"] == str(Path("runs") / new.name)
    assert _without_wall_time(new) == _without_wall_time(old)  # same settings, same run


def test_a_folder_locked_by_a_live_run_is_refused_and_a_stale_lock_taken_over(
    tmp_path: Path, capsys
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as live:
        (run / LOCK_NAME).write_text(f"{live.pid}\n")
        try:
            assert _code(["train", *SMALL, "--out", str(run)]) == 2
            line = _one_error_line(capsys)
            assert f"--out {run} is in use by another jmarl run (pid {live.pid}" in line
            assert sorted(p.name for p in run.iterdir()) == [LOCK_NAME]
        finally:
            live.kill()
    live.wait()
    # its process is gone: the lock is stale and the next run takes it over
    assert main(["train", *SMALL, "--out", str(run)]) == 0
    assert not (run / LOCK_NAME).exists()  # released at the end
    assert len(_rows(run)) == 4


# --- SIGKILL and Ctrl-C ---------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys, time
    import jmarl.run.recorder as recorder
    from jmarl.cli import main

    original, saves = recorder.save_checkpoint, []

    def save(*args, **kwargs):
        saves.append(1)
        if len(saves) == 2 and sys.argv[1] == "kill":  # before writing update 4's checkpoint
            print("paused", flush=True)
            time.sleep(300)
        out = original(*args, **kwargs)
        if len(saves) == 1 and sys.argv[1] == "interrupt":  # after update 2's checkpoint
            print("paused", flush=True)
            while not recorder._STOP.is_set():  # until the test's SIGINT or SIGTERM arrives
                time.sleep(0.01)
        return out

    recorder.save_checkpoint = save
    sys.exit(main(sys.argv[2:]))
    """
)


def _start_child(how: str, argv: list[str]) -> subprocess.Popen:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, how, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )


def _wait_paused(child: subprocess.Popen) -> None:
    assert child.stdout is not None
    line = child.stdout.readline()
    if line.strip() != "paused":
        child.kill()
        _, err = child.communicate(timeout=60)
        raise AssertionError(line + err)


def test_a_run_killed_with_sigkill_and_resumed_equals_the_uninterrupted_run(
    tmp_path: Path, uninterrupted: Path
) -> None:
    run = tmp_path / "run"
    argv = ["train", *RESUMABLE, "--logger", "tensorboard", "--out", str(run)]
    with _start_child("kill", argv) as child:
        _wait_paused(child)
        os.kill(child.pid, signal.SIGKILL)
        child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert len(_rows(run)) == 4 and _checkpoint_update(run) == 2  # rows 3-4 not checkpointed
    assert (run / LOCK_NAME).is_file()  # left behind by the killed process
    half_written = run / f".{CHECKPOINT_NAME}.x1y2.tmp"  # as a kill inside a write leaves
    half_written.write_bytes(b"\x85")
    assert main(["train", "--resume", "--out", str(run), "--quiet"]) == 0
    assert _without_wall_time(run) == _without_wall_time(uninterrupted)
    assert _checkpoint_update(run) == 8 and not (run / LOCK_NAME).exists()
    assert not half_written.exists()
    umask = os.umask(0o022)
    os.umask(umask)
    for name in ("config.json", CHECKPOINT_NAME, "metrics.jsonl"):  # as any file it writes
        assert (run / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
    walls = [r["wall_time_s"] for r in _rows(run)]
    assert walls == sorted(walls)  # wall time goes on from the killed run's
    # the resumed run kept logging to TensorBoard (config.json says so), and TensorBoard shows
    # each update once: the killed run's events after the checkpoint are purged
    assert _tensorboard_scalars(run, "wall_time_s") == {
        r["env_steps"]: pytest.approx(r["wall_time_s"]) for r in _rows(run)
    }


@pytest.mark.parametrize(
    ("signum", "code", "said"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated (SIGTERM)")],
    ids=["ctrl-c", "sigterm"],
)
def test_ctrl_c_or_sigterm_saves_a_checkpoint_and_the_plot_and_exits_128_plus_the_signal(
    signum: int, code: int, said: str, tmp_path: Path, uninterrupted: Path
) -> None:
    run = tmp_path / "run"
    with _start_child("interrupt", ["train", *RESUMABLE, "--out", str(run)]) as child:
        _wait_paused(child)
        child.send_signal(signum)
        out, err = child.communicate(timeout=120)
    assert child.returncode == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"{said} at update 3" in lines[0], err
    assert f"--resume --out {run}" in lines[0]
    assert out.strip() == ""
    # the chunk running at Ctrl-C finished and was checkpointed, off the every-2 schedule
    assert _checkpoint_update(run) == 3 and len(_rows(run)) == 3
    assert (run / "returns.png").stat().st_size > 1000
    assert not (run / LOCK_NAME).exists()
    assert main(["train", "--resume", "--out", str(run), "--quiet"]) == 0
    assert _without_wall_time(run) == _without_wall_time(uninterrupted)


def test_a_recurrent_run_resumes_exactly(tmp_path: Path, monkeypatch) -> None:
    """The policy carry and env states in the rollout state survive the checkpoint. The run
    stops (as if killed) right after its first checkpoint, at update 1 of 4: in the middle of
    episodes (10 steps each, 25 per rollout), where the carry is not a fresh one."""
    import jmarl.run.recorder as recorder

    argv = ["train", *SMALL, "--log-every", "1", "--episode-length", "10", "--seed", "4"]
    argv += ["--recurrent", "--gru-size", "8"]
    assert main([*argv, "--out", str(tmp_path / "whole")]) == 0
    original = recorder.save_checkpoint

    def save_then_die(*args: object, **kwargs: object) -> None:
        original(*args, **kwargs)
        raise SystemExit("killed")

    monkeypatch.setattr(recorder, "save_checkpoint", save_then_die)
    with pytest.raises(SystemExit, match="killed"):
        main([*argv, "--out", str(tmp_path / "run")])
    monkeypatch.undo()
    assert len(_rows(tmp_path / "run")) == 1
    assert main(["train", "--resume", "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert _without_wall_time(tmp_path / "run") == _without_wall_time(tmp_path / "whole")


# --- runtime failures: one line, exit 1 (bad inputs: test_bad_input_catalogue.py) -----------


def test_runtime_failures_exit_1_with_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    import jmarl.run.recorder as recorder

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device", str(tmp_path / "run" / CHECKPOINT_NAME))

    monkeypatch.setattr(recorder, "save_checkpoint", disk_full)
    assert _code(["train", *SMALL, "--out", str(tmp_path / "run")]) == 1
    line = _one_error_line(capsys)
    assert "No space left on device" in line and CHECKPOINT_NAME in line, line

    def bug(*args: object, **kwargs: object) -> None:
        raise KeyError("surprise")

    monkeypatch.setattr(recorder, "save_checkpoint", bug)
    assert _code(["train", *SMALL, "--out", str(tmp_path / "run2")]) == 1
    line = _one_error_line(capsys)
    assert "KeyError" in line and "--debug" in line, line
    assert not (tmp_path / "run2" / LOCK_NAME).exists()


# --- TensorBoard ------------------------------------------------------------------------------


def _tensorboard_scalars(run: Path, tag: str) -> dict[int, float]:
    """``{step: value}`` of ``tag`` as TensorBoard shows it; fails on a step shown twice."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    steps = [e.step for e in events.Scalars(tag)]
    assert len(steps) == len(set(steps)), steps
    return {e.step: e.value for e in events.Scalars(tag)}


def test_tensorboard_logs_every_metric_beside_metrics_jsonl(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    assert (
        main(["train", *SMALL, "--seeds", "2", "--logger", "tensorboard", "--out", str(run)]) == 0
    )
    rows = _rows(run)
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    expected = {k for k in rows[0] if k not in ("env_steps", "episode_return_per_seed")}
    expected |= {"episode_return_per_seed/seed_0", "episode_return_per_seed/seed_1"}
    assert expected <= tags, expected - tags
    for tag in expected:
        name, _, seed = tag.partition("/seed_")
        logged = {e.step: e.value for e in events.Scalars(tag)}
        wanted = {
            r["env_steps"]: r[name][int(seed)] if seed else r[name]
            for r in rows
            if (r[name][int(seed)] if seed else r[name]) is not None
        }
        assert logged == pytest.approx(wanted, rel=1e-6), tag
