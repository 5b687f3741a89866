"""Checkpoints are written atomically: a crash in the middle of a write loses nothing.

The child process below saves a first checkpoint, then starts a second one whose write stops
half-way (every file opened for writing in the run folder writes half of its bytes, flushes and
blocks); the test kills it with SIGKILL there, as a power cut or OOM kill would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from jmarl.run.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint

CHILD = textwrap.dedent(
    """
    import builtins, io, os, sys, time
    from pathlib import Path
    import numpy as np
    from jmarl.run.checkpoint import save_checkpoint

    run = Path(sys.argv[1])
    save_checkpoint(run, {"w": np.arange(4.0)}, {"update": 1})

    class HalfWriter(io.RawIOBase):
        def __init__(self, f):
            self.f = f
        def writable(self):
            return True
        def write(self, data):
            data = bytes(data)
            self.f.write(data[: len(data) // 2])
            self.f.flush()
            print("half written", flush=True)
            time.sleep(120)
        def __getattr__(self, name):
            return getattr(self.f, name)

    def hook(opener):
        def wrapped(file, mode="r", *args, **kwargs):
            f = opener(file, mode, *args, **kwargs)
            path = file if not isinstance(file, int) else None
            inside = path is None or str(run) in str(Path(path).resolve())
            return HalfWriter(f) if "w" in str(mode) and inside else f
        return wrapped

    builtins.open = hook(builtins.open)
    io.open = builtins.open
    os.fdopen = hook(os.fdopen)
    save_checkpoint(run, {"w": np.full(4, 7.0)}, {"update": 2})
    print("second save finished", flush=True)
    """
)


def test_a_crash_in_the_middle_of_a_write_leaves_the_previous_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(run)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    ) as child:
        assert child.stdout is not None
        line = child.stdout.readline()
        if line.strip() == "half written":
            os.kill(child.pid, signal.SIGKILL)
        _, err = child.communicate(timeout=60)
    assert line.strip() == "half written", line + err
    assert child.returncode == -signal.SIGKILL
    tree, meta = load_checkpoint(run, {"w": np.zeros(4)})
    assert meta == {"update": 1}
    np.testing.assert_array_equal(tree["w"], np.arange(4.0))


def test_a_failed_write_leaves_no_temporary_files(tmp_path: Path, monkeypatch) -> None:
    save_checkpoint(tmp_path, {"w": np.arange(3.0)}, {"update": 1})

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(tmp_path, {"w": np.zeros(3)}, {"update": 2})
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_NAME]
    tree, meta = load_checkpoint(tmp_path, {"w": np.zeros(3)})
    assert meta == {"update": 1}
    np.testing.assert_array_equal(tree["w"], np.arange(3.0))
