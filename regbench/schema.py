"""Range checks on a composed config, run before any work: one readable line per mistake."""
from __future__ import annotations

from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from regbench.reg import combination
from regbench.errors import UserError
from regbench.identity import REPLICATES
from regbench.hparams_search import METRIC, METRICS

# (dotted key, test, what the value must be); keys absent from the config are skipped.
RULES: list[tuple[str, Callable[[Any], bool], str]] = [
    *((seed, lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an integer >= 0")
      for seed in sorted(REPLICATES)),
    ("optim.lr", lambda v: v > 0, "> 0"),
    ("optim.momentum", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("optim.weight_decay", lambda v: v >= 0, ">= 0"),
    ("trainer.epochs", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    ("trainer.batch_size", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    ("trainer.eval_batch_size", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    ("trainer.eval_every", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    ("trainer.eval_every_steps", lambda v: v is None or (isinstance(v, int) and v >= 1), "null or an integer >= 1"),
    ("trainer.max_steps", lambda v: v is None or (isinstance(v, int) and v >= 1), "null or an integer >= 1"),
    ("trainer.log_every", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    ("trainer.stop_check_s", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0,
     "a number >= 0 (seconds)"),
    ("trainer.label_smoothing", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("trainer.device", lambda v: v in ("auto", "cpu", "gpu"), "one of auto, cpu, gpu"),
    ("trainer.amp", lambda v: isinstance(v, str) and v in ("off", "fp16", "bf16"), "one of off, fp16, bf16"),
    ("trainer.compile", lambda v: isinstance(v, bool), "true or false"),
    ("trainer.eval_train", lambda v: isinstance(v, bool), "true or false"),
    ("dataset.val_size", lambda v: not isinstance(v, bool) and ((isinstance(v, int) and v >= 0) or 0 < v < 1),
     "a number of images >= 0 or a fraction in (0, 1)"),
    ("trainer.cudnn_benchmark", lambda v: isinstance(v, bool), "true or false"),
    ("trainer.deterministic", lambda v: isinstance(v, bool), "true or false"),
    ("trainer.cudnn_workspace_mb", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
     "an integer >= 0 (MB)"),
    ("trainer.tf32", lambda v: isinstance(v, bool), "true or false"),
    ("trainer.threads", lambda v: v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1),
     "auto or an integer >= 1"),
    ("trainer.auto_threads_max", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
     "an integer >= 1"),
    ("trainer.data_on_device", lambda v: v == "auto" or isinstance(v, bool), "auto, true or false"),
    ("trainer.data_on_device_mb", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0,
     "a number >= 0 (MB)"),
    ("trainer.num_workers", lambda v: v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v >= 0),
     "auto or an integer >= 0"),
    ("dataset.in_memory", lambda v: v == "auto" or isinstance(v, bool), "auto, true or false"),
    ("dataset.memory_limit_mb", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0,
     "a number >= 0 (MB)"),
    ("dataset.on_bad_image", lambda v: v in ("fail", "skip"), "fail or skip"),
    ("dataset.layout", lambda v: v in ("imagefolder", "imagenet", "tiny_imagenet"),
     "one of imagefolder, imagenet, tiny_imagenet"),
    ("dataset.transform", lambda v: v in ("resize", "imagenet"), "resize or imagenet"),
    ("trainer.fast_conv_bias", lambda v: isinstance(v, bool), "true or false"),
    ("trainer.mkl_amd_avx2", lambda v: isinstance(v, bool), "true or false"),
    ("bench.steps", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    ("bench.warmup", lambda v: isinstance(v, int) and v >= 0, "an integer >= 0"),
    ("bench.eval_repeats", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    ("sched.interval", lambda v: v in ("step", "epoch"), "step or epoch"),
    ("sched.step_size", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    ("sched.gamma", lambda v: v > 0, "> 0"),
    ("sched.milestones", lambda v: len(v) >= 1 and all(isinstance(m, int) and m >= 1 for m in v)
     and list(v) == sorted(set(v)), "a list of increasing integers >= 1"),
    ("sched.T_max", lambda v: v is None or (isinstance(v, int) and v >= 1), "null or an integer >= 1"),
    ("dataset.image_size", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    ("dataset.channels", lambda v: v in (1, 3), "1 or 3"),
    ("dataset.label", lambda v: v in ("fine", "coarse"), "fine or coarse"),
    ("dataset.num_classes", lambda v: isinstance(v, int) and v >= 2, "an integer >= 2"),
    *((f"dataset.limit.{split}", lambda v: v is None or (isinstance(v, int) and v >= 1), "null or an integer >= 1")
      for split in ("train", "val", "test")),
    ("reg.p", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("reg.dropblock.keep_prob", lambda v: 0 < v <= 1, "in (0, 1]"),
    ("reg.dropblock.block_size", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    ("reg.droppath.rate", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("reg.cutout.size", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    ("reg.mixup.alpha", lambda v: v > 0, "> 0"),
    ("reg.cutmix.alpha", lambda v: v > 0, "> 0"),
    ("reg.cutmix.prob", lambda v: 0 <= v <= 1, "in [0, 1]"),
    (METRIC, lambda v: v in METRICS, f"one of {', '.join(METRICS)} (a search never optimizes a test accuracy)"),
]


def check(cfg: DictConfig) -> None:
    """Raise a UserError naming the first key whose value is out of range."""
    for key, test, expected in RULES:
        value = OmegaConf.select(cfg, key, default="<absent>", throw_on_missing=False)
        if isinstance(value, str) and value == "<absent>":
            continue
        try:
            ok = test(value)
        except TypeError:
            ok = False
        if not ok:
            raise UserError(f"{key}={value!r} is invalid: it must be {expected}")
    for name in ("mean", "std"):
        values = list(cfg.dataset[name])
        if len(values) != cfg.dataset.channels:
            raise UserError(f"dataset.{name} has {len(values)} values for {cfg.dataset.channels} channel(s): give one per channel")
    size = OmegaConf.select(cfg, "reg.cutout.size")
    if cfg.reg.batch.get("cutout") is not None and size > cfg.dataset.image_size:
        raise UserError(f"reg.cutout.size={size} is larger than the {cfg.dataset.image_size}×{cfg.dataset.image_size} "
                        f"images (dataset.image_size): give at most {cfg.dataset.image_size}")
    combination.check(cfg.reg)
