"""The held catalogue of bad inputs and faults of issue 12 ("Why"), one row each.

Every row runs the ``jmarl`` command in-process from a prepared folder and checks the exit
code, the one line it prints (no traceback: exit 2 for bad input, 1 for a runtime failure,
130 / 143 for Ctrl-C / SIGTERM), and that nothing of an earlier run was overwritten. Rows
that must work (exit 0) check a word of the printed summary.

Rows that would otherwise cost minutes run with a stand-in named by ``patch``: ``--steps
3000000000`` builds the real trainer and counts its last update the way the driver does
(training 3e9 steps is not a test); ``evaluate --episodes 10000000`` plays stand-in episodes
through the real chunking; ``--agents 1000`` is refused on a machine with 2 GB free.

Issue 12's other findings are tested where their code lives: the Tianshou drop-in swaps in
``tests/bridge/test_tianshou_compat.py`` and ``test_tianshou_upstream.py``, the real JaxMARL
envs in ``test_jaxmarl_envs.py``, kill -9 + ``--resume`` and Ctrl-C / SIGTERM of a real process
in ``test_run_safety.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np
import pytest
from flax import serialization

import jmarl.run.recorder as recorder
from jmarl import cli
from jmarl.eval.evaluate import EVAL_CHUNK, EvalResult
from jmarl.run import driver, resources
from jmarl.run.checkpoint import CHECKPOINT_NAME
from jmarl.run.folder import LOCK_NAME

PZ = "pettingzoo:mpe2.simple_spread_v3"
TINY = ["--num-envs", "4", "--rollout-length", "25", "--num-minibatches", "2"]
TINY += ["--hidden-sizes", "8", "--quiet"]
# 4 updates of one chunk each, a checkpoint every 2 updates
RUN = ["--steps", "400", "--log-every", "1", "--checkpoint-every", "2", "--seed", "7", *TINY]
CONF = ["train", "--config", "{conf}", "--quiet", "--out", "{out}"]
PZ_TINY = {"steps": 32, "ppo": {"num_envs": 2, "rollout_length": 16, "num_minibatches": 1}}


def train(*flags: str) -> list[str]:
    """``jmarl train FLAGS --quiet --out {out}``."""
    return ["train", *flags, "--quiet", "--out", "{out}"]


class Case(NamedTuple):
    """One bad input or fault.

    :param argv: the ``jmarl`` command; ``{out}`` is the prepared folder, ``{conf}`` the
        config file holding ``conf``.
    :param code: the exit code.
    :param words: what the one stderr line (exit != 0) or the summary on stdout holds, each
        with ``{out}`` and ``{conf}`` filled in.
    :param conf: the config file's content (JSON, or a ``str`` written as it is; None: no
        file).
    :param folder: what ``{out}`` is beforehand (a key of :data:`FOLDERS`).
    :param patch: a stand-in (a key of :data:`PATCHES`).
    """

    argv: list[str]
    code: int
    words: str | tuple[str, ...]
    conf: Any = None
    folder: str = "absent"
    patch: str = ""


NOT_PZ = "is not used by PettingZoo envs (pettingzoo:mpe2.simple_spread_v3)"
CASES: dict[str, Case] = {
    # run folders: nothing of an earlier run is lost
    "out-holds-another-run": Case(
        train(*RUN),
        2,
        "--out {out} holds another run (config.json, metrics.jsonl, checkpoint.msgpack, "
        "returns.png); pass --resume to continue it, --overwrite to replace it",
        folder="trained",
    ),
    "overwrite-with-a-bad-flag-keeps-the-old-run": Case(
        train("--overwrite", "--lr", "nan"), 2, "--lr", folder="trained"
    ),
    "overwrite-refused-by-the-resource-guard-keeps-the-old-run": Case(
        train("--overwrite", "--agents", "1000"),
        2,
        "needs about",
        folder="trained",
        patch="2GB-free",
    ),
    "saved-config-as-config-trains-into-a-new-folder": Case(
        ["train", "--config", "{out}/config.json", "--quiet"], 0, '"updates": 4', folder="trained"
    ),
    "two-runs-one-out-lock": Case(
        train(*RUN), 2, "--out {out} is in use by another jmarl run (pid", folder="locked"
    ),
    "resume-of-no-run": Case(
        train("--resume"), 2, "--resume: {out} holds no run to continue (no config.json)"
    ),
    # wrong types
    "continuous-actions-no": Case(
        CONF,
        2,
        "RunConfig.continuous_actions (--continuous-actions): expected bool | None, got 'no'",
        {"continuous_actions": "no"},
    ),
    "anneal-lr-false-string": Case(
        CONF,
        2,
        "PPOConfig.anneal_lr (--anneal-lr): expected bool, got 'false' (str)",
        {"ppo": {"anneal_lr": "false"}},
    ),
    "hidden-sizes-a-string": Case(
        CONF,
        2,
        "PPOConfig.hidden_sizes (--hidden-sizes): expected tuple[int, ...], got '64' (str)",
        {"ppo": {"hidden_sizes": "64"}},
    ),
    "num-envs-a-float": Case(
        CONF,
        2,
        "PPOConfig.num_envs (--num-envs): expected int, got 4.0 (float)",
        {"ppo": {"num_envs": 4.0}},
    ),
    "agents-a-string": Case(
        CONF, 2, "RunConfig.agents (--agents): expected int | None, got '3'", {"agents": "3"}
    ),
    "algorithm-section-a-number": Case(
        CONF, 2, "ppo: expected a table of PPOConfig settings, got 5", {"ppo": 5}
    ),
    # settings that would be ignored
    "env-kwargs-a-jax-env-does-not-take": Case(
        CONF,
        2,
        "env_kwargs of env 'simple_spread': unknown argument 'bogus'; it takes num_agents, "
        "max_steps, continuous_actions, local_ratio",
        {"env_kwargs": {"bogus": 1}},
    ),
    "agents-of-a-pettingzoo-env": Case(
        train("--env", PZ, "--agents", "5"), 2, ("--agents " + NOT_PZ, "env_kwargs", "'N'")
    ),
    "episode-length-of-a-pettingzoo-env": Case(
        train("--env", PZ, "--episode-length", "5"),
        2,
        ("--episode-length " + NOT_PZ, "'max_cycles'"),
    ),
    "continuous-actions-of-a-pettingzoo-env": Case(
        train("--env", PZ, "--no-continuous-actions"),
        2,
        ("--continuous-actions " + NOT_PZ, "in env_kwargs"),
    ),
    "agent-groups-without-grouped-sharing": Case(
        CONF,
        2,
        "agent_groups is only used with sharing='grouped', but sharing is 'shared'",
        {"agent_groups": {"g": ["agent_0"]}},
    ),
    "pettingzoo-max-cycles-negative": Case(
        CONF,
        2,
        "env_kwargs of mpe2.simple_spread_v3['max_cycles']: must be >= 1, got -5",
        {"env": PZ, "env_kwargs": {"max_cycles": -5}, **PZ_TINY},
    ),
    # numbers
    "steps-3e9-counted-exactly": Case(
        train("--steps", "3000000000"), 0, '"env_steps": 3000000000', patch="count-steps"
    ),
    "steps-1e15": Case(
        train("--steps", str(10**15)),
        2,
        ("updates of 3200 env steps; at most 2147483647 fit the update counter", "--num-envs"),
    ),
    "lr-nan": Case(
        train("--lr", "nan"), 2, "PPOConfig.lr (--lr): must be a finite number, got nan"
    ),
    "lr-inf": Case(
        train("--lr", "inf"), 2, "PPOConfig.lr (--lr): must be a finite number, got inf"
    ),
    "clip-eps-negative": Case(
        train("--clip-eps=-0.2"), 2, "PPOConfig.clip_eps (--clip-eps): must be >= 0.0, got -0.2"
    ),
    "ent-coef-negative": Case(
        train("--ent-coef=-0.01"), 2, "PPOConfig.ent_coef (--ent-coef): must be >= 0.0, got -0.01"
    ),
    "vf-coef-negative": Case(
        train("--vf-coef=-1"), 2, "PPOConfig.vf_coef (--vf-coef): must be >= 0.0, got -1.0"
    ),
    "seed-2e70": Case(
        train("--seed", str(2**70)), 2, "RunConfig.seed (--seed): must be >= 0 and <= 4294967295"
    ),
    "seed-2e32-the-same-key-as-0": Case(train("--seed", str(2**32)), 2, "<= 4294967295"),
    "evaluate-seed-2e70": Case(
        ["evaluate", "{out}", "--seed", str(2**70)],
        2,
        "--seed must be >= 0 and <= 4294967295",
        folder="trained",
    ),
    "evaluate-seed-negative": Case(
        ["evaluate", "{out}", "--seed=-1"], 2, "--seed must be >= 0", folder="trained"
    ),
    "agents-1000-resource-guard": Case(
        train("--agents", "1000"),
        2,
        ("the training state (--seeds x --num-envs envs) needs about", "lower --num-envs"),
        patch="2GB-free",
    ),
    "evaluate-1e7-episodes-in-chunks": Case(
        ["evaluate", "{out}", "--episodes", "10000000"],
        0,
        '"episodes": 10000000',
        folder="trained",
        patch="stand-in-episodes",
    ),
    # OS errors, signals, damaged files
    "out-is-a-file": Case(
        train(*RUN), 2, "jmarl train: error: --out {out} exists and is not a folder", folder="file"
    ),
    "out-inside-a-file": Case(
        train(*RUN),
        2,
        "jmarl train: error: --out {out}: cannot create the folder",
        folder="in-file",
    ),
    "out-permission-denied": Case(
        train(*RUN), 2, ("--out {out}", "Permission denied"), folder="read-only"
    ),
    "out-inside-a-folder-without-permission": Case(
        train(*RUN), 2, ("--out {out}", "Permission denied"), folder="in-read-only"
    ),
    "ctrl-c": Case(
        train(*RUN),
        130,
        "interrupted at update 3; checkpoint and returns.png saved in {out} (continue with: "
        "jmarl train --resume --out {out})",
        patch="SIGINT",
    ),
    "sigterm": Case(
        train(*RUN),
        143,
        "terminated (SIGTERM) at update 3; checkpoint and returns.png saved in {out}",
        patch="SIGTERM",
    ),
    "checkpoint-of-another-agent-count": Case(
        ["evaluate", "{out}", "--episodes", "2"],
        2,
        "checkpoint {out}/checkpoint.msgpack does not fit the run's config.json",
        folder="other-agents",
    ),
    "checkpoint-garbage": Case(
        ["evaluate", "{out}", "--episodes", "2"],
        2,
        "checkpoint {out}/checkpoint.msgpack cannot be read",
        folder="garbage",
    ),
    "run-config-json-a-list": Case(
        ["evaluate", "{out}"],
        2,
        "config file {out}/config.json must hold a JSON object of settings, not a list",
        folder="list",
    ),
    "config-file-a-list": Case(
        CONF, 2, "config file {conf} must hold a JSON object of settings, not a list", [1, 2]
    ),
    "config-file-not-json": Case(CONF, 2, "config file {conf} is not valid JSON", "{not json"),
    "config-file-missing": Case(CONF, 2, "config file not found: {conf}"),
    "config-file-a-folder": Case(
        ["train", "--config", "{out}", "--quiet"],
        2,
        "config file {out} is a folder, not a file",
        folder="trained",
    ),
}


# --- prepared folders -------------------------------------------------------------------------


class Setup(NamedTuple):
    """What preparing a case may use: its own folder, the finished run of :data:`RUN` (to
    copy), the case's monkeypatch and what to clean up after it."""

    tmp: Path
    run: Path
    monkeypatch: pytest.MonkeyPatch
    cleanup: contextlib.ExitStack


def _code(argv: list[str]) -> int:
    try:
        return cli.main(argv)
    except SystemExit as e:  # argparse's own errors
        return int(e.code or 0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run of :data:`RUN`."""
    run = tmp_path_factory.mktemp("trained") / "run"
    assert cli.main(["train", *RUN, "--out", str(run)]) == 0
    return run


def _edit_config(run: Path, edit: Callable[[dict], Any]) -> Path:
    path = run / "config.json"
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    return run


def _copy(run: Path, to: Path) -> Path:
    """A copy of ``run`` in ``to``, as if trained there (its config.json names ``to``)."""
    shutil.copytree(run, to)
    return _edit_config(to, lambda c: {**c, "out": str(to)})


def _trained(s: Setup) -> Path:
    return _copy(s.run, s.tmp / "run")


def _garbage(s: Setup) -> Path:
    run = _trained(s)
    (run / CHECKPOINT_NAME).write_bytes(b"\x00garbage")
    return run


def _a_file(s: Setup) -> Path:
    (s.tmp / "file").write_text("x")
    return s.tmp / "file"


def _read_only(s: Setup) -> Path:
    """A folder this user may not write to (as root, whom the OS lets write anyway, ``os.open``
    under it says what the OS says to a user)."""
    folder = s.tmp / "read-only"
    folder.mkdir(mode=0o500)
    if os.geteuid() == 0:
        real_open = os.open

        def deny(path: Any, *args: Any, **kwargs: Any) -> int:
            if str(path).startswith(str(folder)):
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, *args, **kwargs)

        s.monkeypatch.setattr(os, "open", deny)
    return folder


def _locked(s: Setup) -> Path:
    """A folder whose lock a live process (not a jmarl run here) holds."""
    out = s.tmp / "run"
    out.mkdir()
    live = s.cleanup.enter_context(
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    )
    s.cleanup.callback(live.kill)
    (out / LOCK_NAME).write_text(f"{live.pid}\n")
    return out


FOLDERS: dict[str, Callable[[Setup], Path]] = {
    "absent": lambda s: s.tmp / "run",
    "trained": _trained,
    "locked": _locked,
    "file": _a_file,
    "in-file": lambda s: _a_file(s) / "run",
    "read-only": _read_only,
    "in-read-only": lambda s: _read_only(s) / "run",
    "other-agents": lambda s: _edit_config(_trained(s), lambda c: {**c, "agents": 2}),
    "list": lambda s: _edit_config(_trained(s), lambda c: []),
    "garbage": _garbage,
}


# --- stand-ins --------------------------------------------------------------------------------


def _count_steps(s: Setup) -> None:
    """``train`` builds the real trainer, then reports the env steps of its last update as the
    driver counts them from the compiled program's int32 update counter."""

    def train_run(cfg: Any, out: Path, progress: Any, **kwargs: Any) -> dict[str, Any]:
        trainer = driver.build_trainer(cfg, driver.build_env(cfg))
        last = {"update": np.asarray([[trainer.num_updates]], np.int32)}
        env_steps = driver.with_env_steps(last, trainer.steps_per_update)["env_steps"]
        assert env_steps.dtype == np.int64
        return {"env_steps": int(env_steps[0, -1])}

    s.monkeypatch.setattr(cli, "_driver", lambda env, what: train_run)


def _stand_in_episodes(s: Setup) -> None:
    """Episodes that cost nothing to play, in chunks whose size must stay bounded."""

    def make_evaluate(
        env: Any, trainer: Any, size: int, deterministic: bool, **kw: Any
    ) -> Callable:
        assert size <= EVAL_CHUNK, f"one compiled evaluation of {size} episodes"
        n = env.spec.num_agents
        return lambda params, key: EvalResult(
            jnp.zeros(size), jnp.full(size, 25, jnp.int32), jnp.zeros((n, size))
        )

    s.monkeypatch.setattr(driver, "make_evaluate", make_evaluate)


def _signal_after_the_first_checkpoint(signum: int) -> Callable[[Setup], None]:
    """Sends ``signum`` to this process once update 2's checkpoint is written (the handler
    must be jmarl's: a missing one would end the test session, so that is checked first)."""

    def patch(s: Setup) -> None:
        original, sent = recorder.save_checkpoint, []

        def save(*args: Any, **kwargs: Any) -> Any:
            out = original(*args, **kwargs)
            if not sent:
                handler = signal.getsignal(signum)
                assert handler not in (signal.SIG_DFL, signal.default_int_handler, None)
                sent.append(signum)
                signal.raise_signal(signum)
            return out

        s.monkeypatch.setattr(recorder, "save_checkpoint", save)

    return patch


PATCHES: dict[str, Callable[[Setup], None]] = {
    "": lambda s: None,
    "count-steps": _count_steps,
    "stand-in-episodes": _stand_in_episodes,
    "2GB-free": lambda s: s.monkeypatch.setattr(
        resources, "available_memory", lambda device=None: 2 * 10**9
    ),
    "SIGINT": _signal_after_the_first_checkpoint(signal.SIGINT),
    "SIGTERM": _signal_after_the_first_checkpoint(signal.SIGTERM),
}


# --- the checks -------------------------------------------------------------------------------


def _snapshot(out: Path) -> dict[str, bytes] | None:
    """Every file under ``out`` (None: there is no ``out``)."""
    if not out.exists():
        return None
    if out.is_file():
        return {out.name: out.read_bytes()}
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _rows(run: Path) -> list[dict[str, Any]]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in rows]


def _stopped_and_resumed(out: Path, trained: Path) -> None:
    """A run stopped by a signal left the checkpoint and plot of update 3, its lock released,
    and ``--resume`` finishes it as if it had never stopped."""
    meta = serialization.msgpack_restore((out / CHECKPOINT_NAME).read_bytes())["meta"]
    assert int(meta["update"]) == 3 and len(_rows(out)) == 3
    assert (out / "returns.png").stat().st_size > 1000
    assert not (out / LOCK_NAME).exists()
    assert cli.main(["train", "--resume", "--out", str(out), "--quiet"]) == 0
    assert _rows(out) == _rows(trained)


@contextlib.contextmanager
def _setup(tmp: Path, trained: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    with contextlib.ExitStack() as cleanup:
        yield Setup(tmp, trained, monkeypatch, cleanup)


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused input that slipped through would train for minutes: fail at once instead."""

    def fail(*args: Any, **kwargs: Any) -> None:
        pytest.fail("the input was accepted and training started")

    monkeypatch.setattr(driver, "_compile_chunk", fail)
    monkeypatch.setattr(recorder.RunRecorder, "__init__", fail)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_or_fault(
    name: str,
    trained: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    case = CASES[name]
    monkeypatch.chdir(tmp_path)  # a default --out lands here, never in the repository
    if case.code == 2:
        request.getfixturevalue("no_training")
    with _setup(tmp_path, trained, monkeypatch) as s:
        out = FOLDERS[case.folder](s)
        conf = tmp_path / "conf.json"
        if case.conf is not None:
            conf.write_text(case.conf if isinstance(case.conf, str) else json.dumps(case.conf))
        before = _snapshot(out)
        PATCHES[case.patch](s)
        capsys.readouterr()
        code = _code([a.format(out=out, conf=conf) for a in case.argv])
        printed = capsys.readouterr()
        monkeypatch.undo()
    err = printed.err.strip().splitlines()
    words = (case.words,) if isinstance(case.words, str) else case.words
    if case.code == 0:
        assert code == 0, err
        line = printed.out.strip().splitlines()[-1]
    else:
        assert code == case.code, err
        assert len(err) == 1, err
        line = err[0]
        assert line.startswith(f"jmarl {case.argv[0]}: ") and printed.out == ""
    for word in words:
        assert word.format(out=out, conf=conf) in line, (word, line)
    if case.code in (130, 143):
        _stopped_and_resumed(out, trained)
    else:
        assert _snapshot(out) == before, "the command changed what --out held"
    if name == "saved-config-as-config-trains-into-a-new-folder":
        (new,) = (tmp_path / "runs").iterdir()
        assert _rows(new) == _rows(out)  # the same settings, in a folder of its own


def test_debug_shows_the_traceback_instead(trained: Path, tmp_path: Path) -> None:
    run = _edit_config(_copy(trained, tmp_path / "run"), lambda c: {**c, "agents": 2})
    with pytest.raises(ValueError, match="does not fit"):
        cli.main(["evaluate", str(run), "--episodes", "2", "--debug"])
