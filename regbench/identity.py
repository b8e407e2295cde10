"""What makes a run the run it is: the one definition that the completed-job skip (the config hash in summary.json),
the resume check and the grouping of runs into table rows share.

Every config key is of one kind:

- RESULT: changes what training computes or which checkpoint is reported. The groups in GROUPS (the choice and
  every resolved key below it), the seeds (`seed`, and `seeds.*` and `dataset.split_seed`: the initial weights, data
  order, augmentation, dropout draws and held-out split derive from them), and the trainer
  keys TRAINER marks so: the batch and its samples (`batch_size`, `drop_last`), the loss (`label_smoothing`), the
  arithmetic (`amp`, `tf32`), the batch statistics (`sync_bn`) and which evaluations the best checkpoint is chosen from
  (`eval_every`, `eval_every_steps`). A key regbench does not know (a new trainer key, `+foo=1`) counts as RESULT:
  mistaking another run for this one would mix two runs, the reverse only asks for a new folder.
- LOCATION: where the dataset's files are (`dataset.root`, `dataset.data_file`, `dataset.data_dir` at any depth of
  the dataset group; the league's `data_files.*`): the same files moved are the same run.
- LENGTH: `trainer.epochs` and `trainer.max_steps`, which a resumed run may raise.
- OTHER: speed, threads, device, evaluation batch size, logging, trackers (`logger`), what a search optimizes
  (`hparams_search`: its trials' sampled values reach a run as overrides), `trainer.resume`, Hydra's own.

How each reader uses them:

- completed-job skip (`config_hash`): RESULT and LENGTH keys; a changed LOCATION or OTHER key still finds the job
  completed, a grown one (more epochs) is not.
- resume (`identity` and `length`): RESULT keys must be equal, LENGTH keys may grow, never shrink.
- tables (`separates_rows`): runs differing in a RESULT or LENGTH key are different rows; a 2-epoch and a 10-epoch
  run are different results, so LENGTH separates rows. Except the REPLICATES (`seed`, `seeds.*`,
  `dataset.split_seed`): runs that differ only in seeds are the replicates of one row, whichever source of variance
  they vary. A table sees a run through its group choices and command-line overrides only, so the choices of the
  other groups (`experiment`, `trainer`), which set keys of the groups above, are RESULT there:
  they name the setup the overrides change.
"""
from __future__ import annotations

import hashlib
import json
from enum import Enum
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


class Kind(Enum):
    RESULT = "result"
    LOCATION = "location"
    LENGTH = "length"
    OTHER = "other"


GROUPS = ("model", "act", "reg", "dataset", "optim", "sched")
_R, _L, _O = Kind.RESULT, Kind.LENGTH, Kind.OTHER
TRAINER = {  # every key of conf/trainer/: a new one must be decided here (tests/test_identity.py checks)
    "epochs": _L, "max_steps": _L,
    "batch_size": _R, "drop_last": _R, "label_smoothing": _R, "amp": _R, "tf32": _R, "sync_bn": _R,
    "eval_every": _R, "eval_every_steps": _R,  # the best checkpoint, and so test_acc, is chosen among these evaluations
    "eval_train": _O,  # adds train_eval_* metrics; selection stays on val
    "eval_batch_size": _O, "device": _O, "compile": _O, "cudnn_benchmark": _O,
    "deterministic": _O, "cudnn_workspace_mb": _O, "threads": _O, "auto_threads_max": _O,
    "fast_conv_bias": _O, "mkl_amd_avx2": _O, "resume": _O, "log_every": _O, "stop_check_s": _O,
    "data_on_device": _O, "data_on_device_mb": _O,  # the same batches either way
    "num_workers": _O,  # streamed samples are drawn from the seeds and their index, not from a worker
}
LOCATION_NAMES = frozenset({"data_file", "data_dir", "root"})  # in the dataset group
# the seeds: in one table row, its repeats (and what pairs a run with another row's run made with the same seeds)
REPLICATES = frozenset({"seed", "seeds.init", "seeds.order", "seeds.augment", "seeds.noise", "dataset.split_seed"})
_HEADS = {"hydra": _O, "logger": _O, "hparams_search": _O, "data_files": Kind.LOCATION}


def kind(key: str) -> Kind:
    """The kind of a dotted config key ("trainer.threads"), a top-level key ("seed") or a group ("hydra/launcher")."""
    head, _, rest = key.split("/")[0].partition(".")
    if head in _HEADS:
        return _HEADS[head]
    if head == "trainer" and rest:
        return TRAINER.get(rest.split(".")[0], Kind.RESULT)
    if head == "dataset" and rest.rsplit(".", 1)[-1] in LOCATION_NAMES:
        return Kind.LOCATION
    return Kind.RESULT


def separates_rows(key: str) -> bool:
    """Runs that differ in `key` (an override's key or a group) belong to different table rows."""
    return kind(key) in (Kind.RESULT, Kind.LENGTH) and key not in REPLICATES


def identity(cfg: DictConfig, choices: Mapping[str, Any]) -> dict[str, Any]:
    """The RESULT keys of a run, flat and dotted: the GROUPS' choices, then every resolved key of that kind."""
    return {**{group: choices.get(group) for group in GROUPS}, **_flat_keys(cfg, (Kind.RESULT,))}


def length(cfg: DictConfig) -> dict[str, Any]:
    """The LENGTH keys of a run ("trainer.epochs": 10, "trainer.max_steps": None)."""
    return {f"trainer.{key}": cfg.trainer.get(key) for key, k in TRAINER.items() if k is Kind.LENGTH}


def config_hash(cfg: DictConfig) -> str:
    """Identifies what a completed run holds: its RESULT and LENGTH keys."""
    keys = _flat_keys(cfg, (Kind.RESULT, Kind.LENGTH))
    return hashlib.sha256(json.dumps(keys, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _flat_keys(cfg: DictConfig, kinds: tuple[Kind, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in map(str, cfg):
        if kind(key) in kinds:
            out.update(_flat(key, _resolved(cfg, key), kinds))
    return out


def _resolved(cfg: DictConfig, key: str) -> Any:
    node = cfg.get(key)
    if not isinstance(node, DictConfig):
        return node
    try:
        return OmegaConf.to_container(node, resolve=True)
    except OmegaConfBaseException:  # e.g. ${hydra:...} in a saved config, which has no hydra node
        return OmegaConf.to_container(node, resolve=False)


def _flat(key: str, value: Any, kinds: tuple[Kind, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        return {key: value}
    out: dict[str, Any] = {}
    for name, item in value.items():
        if kind(f"{key}.{name}") in kinds:
            out.update(_flat(f"{key}.{name}", item, kinds))
    return out
