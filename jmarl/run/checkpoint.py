"""Atomic checkpoints of a training state (msgpack via ``flax.serialization``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

CHECKPOINT_NAME = "checkpoint.msgpack"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` so that readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(directory: Path, tree: Any, meta: dict[str, Any]) -> Path:
    """Saves ``{"state": tree, "meta": meta}`` atomically to ``directory/checkpoint.msgpack``."""
    host = jax.tree.map(np.asarray, tree)
    data = serialization.to_bytes({"state": host, "meta": meta})
    path = Path(directory) / CHECKPOINT_NAME
    atomic_write_bytes(path, data)
    return path


def load_checkpoint(directory: Path, template: Any) -> tuple[Any, dict[str, Any]]:
    """Restores a checkpoint into the structure of ``template``; returns ``(tree, meta)``.

    :raises FileNotFoundError: no checkpoint in ``directory``.
    """
    path = Path(directory) / CHECKPOINT_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    raw = serialization.msgpack_restore(path.read_bytes())
    state = serialization.from_state_dict(template, raw["state"])
    return state, dict(raw.get("meta", {}))
