"""Checkpoints as .npz files: arrays plus a JSON header, loaded without pickle (allow_pickle=False)."""
from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import paddle

from regbench.errors import UserError
from regbench.atomic_files import atomic_write

_META = "__meta__"
_INDEX = re.compile(r"_\d+$")  # the counter unique_name.generate appends to an accumulator's name


def _split(prefix: str, state: dict[str, Any], arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    for key, value in state.items():
        if isinstance(value, paddle.Tensor):
            arrays[f"{prefix}/{key}"] = value.numpy()
        elif isinstance(value, np.ndarray):
            arrays[f"{prefix}/{key}"] = value
        elif isinstance(value, dict):
            _split(f"{prefix}/{key}", value, arrays, meta)
        else:
            meta[f"{prefix}/{key}"] = value


def _structured(optimizer_state: dict[str, Any], model: paddle.nn.Layer) -> dict[str, Any]:
    """The optimizer's state keyed `features.0.weight:moment1` (the parameter's model.state_dict() key, the
    accumulator): Paddle keys it `conv2d_3.w_0_moment1_0`, by process-global names that depend on what the process
    built before (the CLI's preflight model, a sweep's earlier jobs), so a resumed process would not find it."""
    owners = {p.name: key for key, p in model.state_dict().items()}
    state = {}
    for key, value in optimizer_state.items():
        if isinstance(value, paddle.Tensor):
            owner = max((n for n in owners if key.startswith(n + "_")), key=len)
            key = f"{owners[owner]}:{_INDEX.sub('', key[len(owner) + 1:])}"
        state[key] = value
    return state


def _paddle_names(state: dict[str, Any], model: paddle.nn.Layer) -> dict[str, Any]:
    """Structured optimizer state keyed as this process's optimizer names it: `{parameter name}_{accumulator}_0`,
    which the optimizer step's unique_name.guard (Trainer.train_step) makes the name it creates."""
    params = model.state_dict()
    out = {}
    for key, value in state.items():
        owner, structured, accumulator = key.partition(":")
        out[f"{params[owner].name}_{accumulator}_0" if structured and owner in params else key] = value
    return out


def load_optimizer_state(optimizer: paddle.optimizer.Optimizer, model: paddle.nn.Layer, state: dict[str, Any]) -> None:
    """Restore optimizer state saved by save_checkpoint into the optimizer of `model`, whatever the process built."""
    optimizer.set_state_dict(_paddle_names(state, model))


def save_checkpoint(path: Path, model: paddle.nn.Layer, optimizer: paddle.optimizer.Optimizer,
                    trainer_state: dict[str, Any], scaler: paddle.amp.GradScaler | None = None) -> None:
    """Write model and optimizer state, the fp16 loss scaler's if given, and the trainer's own state atomically."""
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {}
    _split("model", model.state_dict(), arrays, meta)
    _split("optim", _structured(optimizer.state_dict(), model), arrays, meta)
    if scaler is not None:  # its scale as an array, its counters and settings as JSON numbers (empty when disabled)
        _split("scaler", scaler.state_dict(), arrays, meta)
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


class Checkpoint(NamedTuple):
    """The states a checkpoint holds, each as its owner's set_state_dict/load_state_dict takes it."""

    model: dict[str, Any]
    optimizer: dict[str, Any]
    trainer: dict[str, Any]
    scaler: dict[str, Any]  # GradScaler.state_dict() of an fp16 run; empty otherwise and in older checkpoints


def load_checkpoint(path: Path) -> Checkpoint:
    """The states a checkpoint holds, or a UserError naming a bad file."""
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
    scaler = {**_nest(arrays, "scaler", lambda v: v), **_nest(meta, "scaler", lambda v: v)}
    return Checkpoint(model, optim, meta["trainer"], scaler)
