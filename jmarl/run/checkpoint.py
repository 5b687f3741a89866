"""Atomic checkpoints of a training state (msgpack via ``flax.serialization``).

A checkpoint file holds ``{"state": learner, "meta": {...}, "resume": {...}}``: the learner
state (what ``jmarl evaluate`` needs) and, from the JAX-native driver, the rest of the
:class:`~jmarl.algos.base.TrainerState` (rollout state with the env states and the policy
carry, the RNG key, the update counter) so that ``--resume`` continues bit-identically.
PRNG keys are stored as their raw key data.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

from jmarl.algos.base import TrainerState

CHECKPOINT_NAME = "checkpoint.msgpack"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the run's configuration."""


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def temporary_files(directory: Path, name: str) -> list[Path]:
    """Temporary files that :func:`atomic_write_bytes` of ``name`` left in ``directory``
    (a process killed while writing)."""
    return sorted(Path(directory).glob(f".{name}.*.tmp"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` so that readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # as open() would create it (mkstemp gives 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _is_key(x: Any) -> bool:
    return jax.dtypes.issubdtype(getattr(x, "dtype", None), jax.dtypes.prng_key)


def _to_host(tree: Any) -> Any:
    """Numpy arrays; PRNG keys as their key data."""
    return jax.tree.map(lambda x: np.asarray(jax.random.key_data(x) if _is_key(x) else x), tree)


def save_checkpoint(directory: Path, tree: Any, meta: dict[str, Any], resume: Any = None) -> Path:
    """Saves ``{"state": tree, "meta": meta, "resume": resume}`` atomically to
    ``directory/checkpoint.msgpack`` (``resume``: what else a resumed run needs, or None)."""
    payload: dict[str, Any] = {"state": _to_host(tree), "meta": meta}
    if resume is not None:
        payload["resume"] = _to_host(resume)
    path = Path(directory) / CHECKPOINT_NAME
    atomic_write_bytes(path, serialization.to_bytes(payload))
    return path


def _host_template(template: Any) -> Any:
    """Zeros shaped like ``template`` (arrays or ``ShapeDtypeStruct``s; keys as key data)."""

    def leaf(x: Any) -> np.ndarray:
        s = jax.eval_shape(jax.random.key_data, x) if _is_key(x) else x
        return np.zeros(np.shape(s), s.dtype)

    return jax.tree.map(leaf, template)


def _check_fits(path: Path, loaded: Any, host: Any) -> None:
    """Raises :class:`CheckpointError` naming the first leaf whose shape or dtype differs."""
    pairs = zip(jax.tree_util.tree_leaves_with_path(host), jax.tree.leaves(loaded))
    for (where, want), got in pairs:
        got = np.asarray(got)
        if got.shape != want.shape or got.dtype != want.dtype:
            raise CheckpointError(
                f"checkpoint {path} does not fit the run's config.json: "
                f"{jax.tree_util.keystr(where)} is {got.dtype}{list(got.shape)} where the config "
                f"gives {want.dtype}{list(want.shape)} (another agent count, algorithm or "
                "network size?)"
            )


def load_checkpoint(
    directory: Path, template: Any, part: str = "state"
) -> tuple[Any, dict[str, Any]]:
    """Restores ``part`` (``"state"``: the learner; ``"resume"``: the rest of the training
    state) of a checkpoint into the structure of ``template``; returns ``(tree, meta)``.

    :param template: arrays or ``jax.ShapeDtypeStruct``s (e.g. from ``jax.eval_shape``);
        PRNG key leaves come back as keys.
    :raises FileNotFoundError: no checkpoint in ``directory``.
    :raises CheckpointError: unreadable, without ``part``, or shapes that differ from
        ``template``'s, naming the file and the first leaf that differs.
    """
    path = Path(directory) / CHECKPOINT_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        raw = serialization.msgpack_restore(path.read_bytes())
    except Exception as e:  # msgpack raises several unrelated types on bad bytes
        raise CheckpointError(f"checkpoint {path} cannot be read: {e}") from None
    if not isinstance(raw, dict) or part not in raw:
        what = "training state to resume from" if part == "resume" else "learner state"
        raise CheckpointError(f"checkpoint {path} holds no {what}")
    host = _host_template(template)
    try:
        state = serialization.from_state_dict(host, raw[part])
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(
            f"checkpoint {path} does not fit the run's config.json: {e}"
        ) from None
    _check_fits(path, state, host)
    state = jax.tree.map(
        lambda t, x: jax.random.wrap_key_data(x) if _is_key(t) else x, template, state
    )
    return state, dict(raw.get("meta", {}))


def resume_part(state: TrainerState) -> dict[str, Any]:
    """What a checkpoint holds besides the learner state so that training continues exactly:
    the rollout state (env states, last timesteps, episode stats, policy carry), the RNG key
    and the update counter."""
    return {"rollout": state.rollout, "key": state.key, "update": state.update}


def load_trainer_state(directory: Path, template: TrainerState) -> tuple[TrainerState, dict]:
    """The whole :class:`TrainerState` of a checkpoint saved with ``resume=resume_part(...)``;
    ``template`` e.g. ``jax.eval_shape(trainer.init, key)``. Returns ``(state, meta)``.

    :raises CheckpointError: as :func:`load_checkpoint`.
    """
    learner, meta = load_checkpoint(directory, template.learner)
    rest, _ = load_checkpoint(directory, resume_part(template), part="resume")
    return TrainerState(learner=learner, **rest), meta
