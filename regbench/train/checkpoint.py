"""Checkpoints as .npz files: arrays plus a JSON header, loaded without pickle (allow_pickle=False)."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import paddle

from regbench.errors import UserError
from regbench.train.run_dir import atomic_write

_META = "__meta__"


def _split(prefix: str, state: dict[str, Any], arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    for key, value in state.items():
        if isinstance(value, paddle.Tensor):
            arrays[f"{prefix}/{key}"] = value.numpy()
        elif isinstance(value, dict):
            _split(f"{prefix}/{key}", value, arrays, meta)
        else:
            meta[f"{prefix}/{key}"] = value


def save_checkpoint(path: Path, model: paddle.nn.Layer, optimizer: paddle.optimizer.Optimizer,
                    trainer_state: dict[str, Any]) -> None:
    """Write model and optimizer state and the trainer's own state atomically to `path`."""
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {}
    _split("model", model.state_dict(), arrays, meta)
    _split("optim", optimizer.state_dict(), arrays, meta)
    meta["trainer"] = trainer_state
    arrays[_META] = np.array(json.dumps(meta))
    with atomic_write(path, "wb") as f:
        np.savez(f, **arrays)


def _nest(flat: dict[str, Any], prefix: str, wrap: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        if not key.startswith(prefix + "/"):
            continue
        *parents, leaf = key[len(prefix) + 1:].split("/")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = wrap(value)
    return out


def load_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(model state, optimizer state, trainer state) from a checkpoint, or a UserError naming a bad file."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        meta = json.loads(str(arrays.pop(_META)))
    except FileNotFoundError:
        raise UserError(f"checkpoint {path} does not exist") from None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as err:
        raise UserError(f"checkpoint {path} is truncated or corrupt ({type(err).__name__}); "
                        "delete it to start over, or resume from another run folder") from None
    model = _nest(arrays, "model", paddle.to_tensor)
    optim = _nest(arrays, "optim", paddle.to_tensor)
    optim.update(_nest(meta, "optim", lambda v: v))
    return model, optim, meta["trainer"]
