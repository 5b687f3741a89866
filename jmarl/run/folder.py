"""Run folders that never lose work: refusal of folders holding another run, and a lock.

A run folder holds one run's files (:data:`RUN_FILES`). ``jmarl train --out DIR`` refuses a
folder that holds any of them unless ``--resume`` (continue that run) or ``--overwrite``
(replace it) is given, and holds a lock file (``.jmarl.lock``, created with ``O_EXCL``,
holding the pid) for as long as it runs, so that two runs never share a folder. A lock whose
pid is no longer alive (a run killed with SIGKILL) is stale and taken over.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from jmarl.run.checkpoint import CHECKPOINT_NAME, temporary_files

LOCK_NAME = ".jmarl.lock"
TENSORBOARD_DIR = "tensorboard"
RUN_FILES = ("config.json", "metrics.jsonl", CHECKPOINT_NAME, "returns.png", TENSORBOARD_DIR)


class RunFolderError(ValueError):
    """``--out`` cannot be used (holds another run, is in use, is not a writable folder)."""


def run_files(out: Path) -> list[str]:
    """The names of :data:`RUN_FILES` present in ``out``."""
    return [name for name in RUN_FILES if (out / name).exists()]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _lock_owner(lock: Path) -> int | None:
    """The pid in ``lock``; None if it is gone, unreadable or not a pid."""
    try:
        return int(lock.read_text().strip())
    except (OSError, ValueError):
        return None


def acquire_lock(out: Path) -> Path:
    """Creates ``out/.jmarl.lock`` holding this process's pid; takes over a stale lock.

    :raises RunFolderError: another live process holds the lock.
    """
    lock = out / LOCK_NAME
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            pid = _lock_owner(lock)
            if pid is None and lock.exists():
                pid = -1  # being written right now: treat as alive
            if pid is not None and (pid == -1 or _pid_alive(pid)):
                raise RunFolderError(
                    f"--out {out} is in use by another jmarl run (pid {pid}, lock file {lock}); "
                    "wait for it to end or choose another --out"
                ) from None
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()}\n")
        return lock
    raise RunFolderError(f"--out {out}: could not take the lock {lock}")


def release_lock(lock: Path) -> None:
    """Removes ``lock`` if this process still holds it."""
    if _lock_owner(lock) == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()


def _make_folder(out: Path) -> bool:
    """Creates ``out`` (and parents); returns whether it was created."""
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"--out {out} exists and is not a folder")
    if out.is_dir():
        return False
    try:
        out.mkdir(parents=True)
    except OSError as e:
        raise RunFolderError(f"--out {out}: cannot create the folder: {e.strerror}") from None
    return True


@contextlib.contextmanager
def run_folder(out: Path, resume: bool = False, overwrite: bool = False) -> Iterator[Path]:
    """Holds ``out`` for one run: created if needed, locked, refused if it holds another
    run's files unless ``resume`` or ``overwrite``. On exit the lock is released, and a
    folder created here that stayed empty is removed.

    With ``overwrite`` nothing is deleted here: the recorder replaces the old files when the
    new run has started, so a run that fails its checks first leaves the old one intact.

    :raises RunFolderError: one line naming the folder and what to do.
    """
    if resume and overwrite:
        raise RunFolderError("--resume and --overwrite exclude each other")
    created = _make_folder(out)
    lock = None
    try:
        try:
            lock = acquire_lock(out)
        except PermissionError as e:
            raise RunFolderError(f"--out {out} is not writable: {e.strerror}") from None
        held = run_files(out)
        if held and not (resume or overwrite):
            raise RunFolderError(
                f"--out {out} holds another run ({', '.join(held)}); pass --resume to continue "
                "it, --overwrite to replace it, or choose another --out"
            )
        if resume and "config.json" not in held:
            raise RunFolderError(f"--resume: {out} holds no run to continue (no config.json)")
        for name in RUN_FILES:  # half-written files of a killed run (the lock is ours now)
            for tmp in temporary_files(out, name):
                tmp.unlink(missing_ok=True)
        yield out
    finally:
        if lock is not None:
            release_lock(lock)
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()  # only if empty: a run that failed before writing anything
