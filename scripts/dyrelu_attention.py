"""Where DY-ReLU-C's spatial attention is below 1: the fraction of positions with π < 1 in every DY-ReLU-C layer of a
trained run, on its val images (article 3's code clips π to 1 nearly everywhere; the paper's π averages 1/3).

    python scripts/dyrelu_attention.py RUN_DIR [--checkpoint best|last] [--images 512]

Prints one line per DY-ReLU-C layer (its map size and fraction) and the fraction over all positions of all layers.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import regbench  # noqa: F401  (before paddle: regbench/__init__.py says why)
import paddle
from omegaconf import OmegaConf

from regbench.data import load_splits
from regbench.data.batches import BatchLoader
from regbench.layers import DyReLUC
from regbench.models import build_model
from regbench.train.checkpoint import load_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder of a model with act=dyrelu_c")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="last")
    parser.add_argument("--images", type=int, default=512, help="val images to run through the model")
    args = parser.parse_args()
    cfg = OmegaConf.load(args.run / ".hydra" / "config.yaml")
    model = build_model(cfg.model, cfg.act, cfg.reg)
    model.set_state_dict(load_checkpoint(args.run / "checkpoints" / f"{args.checkpoint}.npz")[0])
    model.eval()
    layers = [(name, m) for name, m in model.named_sublayers() if isinstance(m, DyReLUC)]
    if not layers:
        raise SystemExit(f"{args.run}: the model has no DY-ReLU-C layer (act={cfg.act._target_})")
    counts = {name: [0, 0, ""] for name, _ in layers}  # below 1, all, map size

    def hook(name: str):
        def count(layer: DyReLUC, inputs: tuple[paddle.Tensor]) -> None:
            x = inputs[0]  # [B, C, H, W] maps, or [B, C] fc outputs (one position)
            width = x.shape[-1] if x.ndim == 4 else 1
            scores = layer.attention_scores(x.reshape([x.shape[0], x.shape[1], -1]), width)
            counts[name][0] += int((scores < 1).astype("int64").sum())
            counts[name][1] += scores.size
            counts[name][2] = f"{x.shape[2]}×{x.shape[3]}" if x.ndim == 4 else "fc"
        return count

    for name, layer in layers:
        layer.register_forward_pre_hook(hook(name))
    ds = cfg.dataset
    val = load_splits(ds).val.head(args.images)
    loader = BatchLoader(val, 128, list(ds.mean), list(ds.std), crop_padding=ds.crop_padding,
                         resized_crop_scale=tuple(ds.resized_crop_scale))
    with paddle.no_grad():
        for images, _ in loader.epoch(seed=None):
            model(images)
    softmax = cfg.act.get("attention_softmax", "positions")
    print(f"{args.run} ({args.checkpoint} checkpoint, attention_softmax={softmax}, {len(val)} val images)")
    for name, (below, total, size) in counts.items():
        print(f"  {name:32s} {size:>6s}  π < 1 at {below / total:.4%} of positions")
    below, total = sum(c[0] for c in counts.values()), sum(c[1] for c in counts.values())
    print(f"  all {len(layers)} DY-ReLU-C layers: π < 1 at {below / total:.4%} of {total:,} positions")


if __name__ == "__main__":
    main()
