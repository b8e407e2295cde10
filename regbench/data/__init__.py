"""Datasets as in-memory uint8 splits (loaders per format) or file lists read per batch (stream.py), and batched
device tensors (batches.py)."""
from __future__ import annotations

import importlib
import logging

from typing import TYPE_CHECKING

import hydra.utils
import numpy as np
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf

from regbench.data.splits import Split, Splits, carve_val
from regbench.errors import UserError

if TYPE_CHECKING:  # Paddle loads where data is first batched or resized, not on import: a command's checks come first
    from regbench.data.stream import FileSplit

log = logging.getLogger("regbench")
RESIZE_CHUNK = 1024  # images resized per call, to bound memory


def load_splits(dataset_cfg: DictConfig) -> Splits:
    """Load the dataset `load:` names, carve `val_size` held-out images (chosen by `split_seed`) out of train when its
    val is the test set, keep the first `limit` of each split, check it against the config, resize."""
    splits = load_raw(dataset_cfg.load)
    if dataset_cfg.val_size and splits.test is None:
        splits = carve_val(splits, dataset_cfg.val_size, dataset_cfg.split_seed)
    elif dataset_cfg.val_size:
        log.info("dataset.val_size=%s unused: the data has a validation split of its own", dataset_cfg.val_size)
    limit = dataset_cfg.limit
    splits = Splits(
        train=splits.train.head(limit.train),
        val=splits.val.head(limit.val),
        test=None if splits.test is None else splits.test.head(limit.test),
        classes=splits.classes,
    )
    channels = splits.train.image_shape[0]
    if channels != dataset_cfg.channels:
        raise UserError(
            f"the data has {channels} channel(s) but dataset.channels={dataset_cfg.channels}: "
            f"set dataset.channels={channels}"
        )
    if len(splits.classes) != dataset_cfg.num_classes:
        raise UserError(
            f"the data has {len(splits.classes)} classes but dataset.num_classes={dataset_cfg.num_classes}: "
            f"set dataset.num_classes={len(splits.classes)}"
        )
    size = dataset_cfg.image_size
    return Splits(
        train=resize(splits.train, size),
        val=resize(splits.val, size),
        test=None if splits.test is None else resize(splits.test, size),
        classes=splits.classes,
    )


def load_raw(load: DictConfig) -> Splits:
    """The splits the loader that `load` names returns, as they are (no val carved, no limit, no resize)."""
    try:
        return hydra.utils.instantiate(load)
    except InstantiationException as e:
        # Hydra wraps whatever the loader raises; a UserError must reach the user as its own one line
        if isinstance(e.__cause__, UserError):
            raise e.__cause__ from None
        raise


def val_is_test(dataset_cfg: DictConfig) -> bool:
    """Whether a run would select its checkpoint on the test split: val_size 0 and data without a val split of its
    own. Told from the config by the loader module's has_val(**load args) where it has one, else by loading the data."""
    if dataset_cfg.val_size:
        return False
    load = OmegaConf.to_container(dataset_cfg.load, resolve=True)
    module = importlib.import_module(load["_target_"].rpartition(".")[0])
    has_val = getattr(module, "has_val", None)
    if has_val is None:
        return load_splits(dataset_cfg).test is None
    return not has_val(**{k: v for k, v in load.items() if not k.startswith("_")})  # without Hydra's _target_ etc.


def in_memory(split: Split | FileSplit) -> Split:
    """The split as uint8 arrays: itself, or a streamed split's files decoded (for tools that need every image)."""
    from regbench.data.stream import decode_all, warn_skipped

    if isinstance(split, Split):
        return split
    decoded, skipped = decode_all(split)
    warn_skipped(len(skipped))
    return decoded


def resize(split: Split | FileSplit, size: int) -> Split | FileSplit:
    """Images resized to size×size (bilinear, half-pixel centres, rounded back to uint8); unchanged if already so
    (a FileSplit's files are decoded at that size)."""
    import paddle
    import paddle.nn.functional as F

    if split.image_shape[1:] == (size, size) or len(split) == 0:
        return split
    out = np.empty((len(split), split.images.shape[1], size, size), np.uint8)
    for lo in range(0, len(split), RESIZE_CHUNK):
        x = paddle.to_tensor(split.images[lo : lo + RESIZE_CHUNK]).astype("float32")
        y = F.interpolate(x, size=[size, size], mode="bilinear", align_corners=False)
        out[lo : lo + RESIZE_CHUNK] = y.round().clip(0, 255).numpy().astype(np.uint8)
    return Split(out, split.labels)
