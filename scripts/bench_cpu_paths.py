"""Where Paddle's CPU time goes and what the trainer's CPU switches buy: prints the figures of README "Performance".

Every variant runs in a fresh process (thread counts, MKL's CPU type and Paddle's IR are fixed when Paddle loads).
The variants of an experiment take turns for --rounds rounds, so that other work on the machine weighs on all of
them alike; each figure is the median over the rounds with its min-max, and ratios to the experiment's first
variant are taken within a round.

    python scripts/bench_cpu_paths.py [--rounds 3] [--only conv,bias,data,mynet] [--torch DIR]

--torch DIR adds PyTorch references from a torch installed apart (pip install --target DIR torch): the project
itself never uses torch.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
PLAIN = ("trainer.fast_conv_bias=false", "trainer.mkl_amd_avx2=false")  # Paddle as it comes
# one thread, as docs/performance.md's figures were taken (the "threads=2" variant overrides it)
MYNET = ("model=mynet", "dataset=synthetic", "trainer.batch_size=64", "trainer.threads=1")

# experiment -> [(variant, child kind, child arguments, environment)]
EXPERIMENTS: dict[str, list[tuple[str, str, list[str], dict[str, str]]]] = {
    "conv": [
        ("eager (Paddle's default)", "conv", ["NCHW"], {}),
        ("eager, MKL_DEBUG_CPU_TYPE=5", "conv", ["NCHW"], {"MKL_DEBUG_CPU_TYPE": "5"}),
        ("eager, FLAGS_use_mkldnn=1", "conv", ["NCHW"], {"FLAGS_use_mkldnn": "1"}),
        ("eager, OMP_NUM_THREADS=2", "conv", ["NCHW"], {"OMP_NUM_THREADS": "2"}),
        ("eager, NHWC", "conv", ["NHWC"], {}),
        ("to_static (PIR)", "conv", ["NCHW", "static"], {}),
        ("to_static, old IR + oneDNN", "conv", ["NCHW", "static"], {"FLAGS_enable_pir_api": "0",
                                                                     "FLAGS_use_mkldnn": "1"}),
        ("PyTorch, 1 thread", "torch_conv", ["1"], {}),
        ("PyTorch, 2 threads", "torch_conv", ["2"], {}),
    ],
    "bias": [
        ("x + bias[1,C,1,1]", "bias", ["add"], {"MKL_DEBUG_CPU_TYPE": "5"}),
        ("inference batch_norm", "bias", ["batch_norm"], {"MKL_DEBUG_CPU_TYPE": "5"}),
    ],
    "data": [
        ("BatchLoader, batch 64", "data", ["loader", "64"], {}),
        ("whole-pixel gather (proposal), batch 64", "data", ["gather", "64"], {}),
        ("BatchLoader, batch 256", "data", ["loader", "256"], {}),
        ("whole-pixel gather (proposal), batch 256", "data", ["gather", "256"], {}),
    ],
    "mynet": [
        ("Paddle as it comes", "train", [*MYNET, *PLAIN], {}),
        ("mkl_amd_avx2", "train", [*MYNET, "trainer.fast_conv_bias=false"], {}),
        ("fast_conv_bias", "train", [*MYNET, "trainer.mkl_amd_avx2=false"], {}),
        ("both (the defaults)", "train", [*MYNET], {}),
        ("defaults, threads=2", "train", [*MYNET, "trainer.threads=2"], {}),
        ("defaults, compile=true", "train", [*MYNET, "trainer.compile=true"], {}),
        ("defaults, compile=true, old IR + oneDNN", "train", [*MYNET, "trainer.compile=true"],
         {"FLAGS_enable_pir_api": "0", "FLAGS_use_mkldnn": "1"}),
        ("defaults, reg=dropblock", "train", [*MYNET, "reg=dropblock"], {}),
        ("PyTorch mynet, 1 thread", "torch_mynet", ["1"], {}),
        ("PyTorch mynet, 2 threads", "torch_mynet", ["2"], {}),
    ],
}


def _median_seconds(work: Callable[[], Any], repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        work()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def child_conv(fmt: str, mode: str = "eager") -> dict[str, float]:
    """A 3x3 conv 64->64 over a [128, 64, 32, 32] batch: forward, and forward + backward (ms)."""
    import paddle

    shape = [128, 64, 32, 32] if fmt == "NCHW" else [128, 32, 32, 64]
    x = paddle.randn(shape)
    conv = paddle.nn.Conv2D(64, 64, 3, padding=1, data_format=fmt)
    layer = paddle.jit.to_static(conv, full_graph=True) if mode == "static" else conv
    x.stop_gradient = False

    def fwd_bwd() -> None:
        layer(x).sum().backward()
        conv.weight.grad.numpy()
        conv.clear_gradients()
        x.clear_gradient()

    def fwd() -> None:
        with paddle.no_grad():
            layer(x).numpy()

    # backward first: a static program first built without gradients keeps none for the weights
    backward_ms = 1000 * _median_seconds(fwd_bwd, 3)
    return {"forward_ms": 1000 * _median_seconds(fwd, 5), "forward_backward_ms": backward_ms}


def child_bias(kind: str) -> dict[str, float]:
    """Adding a per-channel bias to a [64, 32, 32, 32] map and its gradients (ms), as mynet's first conv does."""
    import paddle
    import paddle.nn.functional as F

    x = paddle.randn([64, 32, 32, 32])
    x.stop_gradient = False
    bias = paddle.create_parameter([32], "float32")
    zeros, ones = paddle.zeros([32]), paddle.ones([32])
    grad = paddle.randn([64, 32, 32, 32])

    def step() -> None:
        if kind == "add":
            y = x + bias.reshape([1, 32, 1, 1])
        else:
            scale = paddle.ones([32])
            scale.stop_gradient = False
            y = F.batch_norm(x, zeros, ones, weight=scale, bias=bias, training=False, epsilon=0.0)
        y.backward(grad)
        bias.grad.numpy()
        x.clear_gradient()
        bias.clear_gradient()

    return {"forward_backward_ms": 1000 * _median_seconds(step, 30)}


def child_data(mode: str, batch: str) -> dict[str, float]:
    """ms per augmented (crop, flip) batch: BatchLoader's matmul resampling, or a proposed whole-pixel gather.

    crop and flip move whole pixels, so a batch can also be cut from its zero-padded uint8 images by strided
    windows (numpy, no float math); the proposal is checked to give BatchLoader's exact batches first."""
    from regbench.config import compose
    from regbench.train import process_env

    cfg = compose(["model=lenet5", "dataset=synthetic", f"trainer.batch_size={batch}"])
    process_env.prepare(cfg.trainer)
    import tempfile

    import numpy as np
    import paddle
    import paddle.nn.functional as F
    from numpy.lib.stride_tricks import sliding_window_view

    from regbench.data.batches import _resample
    from regbench.train.build import build_trainer

    loader = build_trainer(cfg, Path(tempfile.mkdtemp()), lambda progress: None)[0].train_loader
    images, labels = loader.split.images, loader.split.labels
    b, (c, h, w), pad = int(batch), images.shape[1:], loader.crop_padding
    rng = np.random.default_rng(0)

    def maps() -> tuple[np.ndarray, ...]:  # the loader's own composed per-sample maps p_in = s*p_out + t
        sx, tx, sy, ty = np.ones(b), np.zeros(b), np.ones(b), np.zeros(b)
        for op in loader.augment:
            osx, otx, osy, oty = getattr(loader, f"_{op}")(rng, b, h, w)
            sx, tx, sy, ty = sx * osx, sx * otx + tx, sy * osy, sy * oty + ty
        return sx, tx, sy, ty

    def gather(batch_images: np.ndarray, sx: np.ndarray, tx: np.ndarray, sy: np.ndarray,
               ty: np.ndarray) -> np.ndarray:
        padded = np.zeros((b, c, h + 2 * pad, w + 2 * pad), np.uint8)
        padded[:, :, pad:pad + h, pad:pad + w] = batch_images
        windows = sliding_window_view(padded, (h, w), axis=(2, 3))  # [B, C, 2p+1, 2p+1, H, W], a view
        top = (np.where(sy > 0, ty, ty - h) + pad).astype(np.int64)
        left = (np.where(sx > 0, tx, tx - w) + pad).astype(np.int64)
        out = windows[np.arange(b), :, top, left]
        out[sx < 0] = out[sx < 0][..., ::-1]
        out[sy < 0] = out[sy < 0][..., ::-1, :]
        return out

    if mode == "loader":
        batches = [loader.epoch(seed=0)]

        def produce() -> None:
            try:
                next(batches[0])[0].numpy()
            except StopIteration:
                batches[0] = loader.epoch(seed=1)

        return {"ms_per_batch": 1000 * _median_seconds(produce, 100, warmup=5)}
    for _ in range(10):  # the proposal must give the loader's exact batches
        sx, tx, sy, ty = maps()
        expected = _resample(paddle.to_tensor(images[:b]).astype("float32"), sx, tx, sy, ty).numpy()
        assert np.array_equal(gather(images[:b], sx, tx, sy, ty).astype(np.float32), expected)
    scale, shift = paddle.to_tensor(loader._scale), paddle.to_tensor(loader._shift)
    zero, one = paddle.zeros_like(scale), paddle.ones_like(scale)

    def proposal() -> None:
        order = rng.permutation(len(labels))[:b]
        x = paddle.to_tensor(gather(images[order], *maps())).astype("float32")
        F.batch_norm(x, zero, one, weight=scale, bias=shift, training=False, epsilon=0.0).numpy()
        paddle.to_tensor(labels[order])

    return {"ms_per_batch": 1000 * _median_seconds(proposal, 100, warmup=5)}


def child_train(*overrides: str) -> dict[str, float]:
    """`regbench bench` figures of a configuration (trainer switches applied as the CLI does)."""
    from regbench.config import compose
    from regbench.train import process_env

    cfg = compose(["+bench=default", *overrides])
    process_env.prepare(cfg.trainer)
    import tempfile

    from regbench.bench.task import measure

    with tempfile.TemporaryDirectory() as folder:
        figures = measure(cfg, Path(folder))
    return {k: figures[k] for k in ("train_img_per_s", "step_ms", "eval_img_per_s", "data_ms_per_batch")}


def _torch(threads: str) -> Any:
    sys.path.insert(0, os.environ["TORCH_DIR"])
    import torch

    torch.set_num_threads(int(threads))
    return torch


def child_torch_conv(threads: str) -> dict[str, float]:
    torch = _torch(threads)
    x = torch.randn(128, 64, 32, 32)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1)

    def fwd() -> None:
        with torch.no_grad():
            conv(x)

    xg = x.clone().requires_grad_()

    def fwd_bwd() -> None:
        conv(xg).sum().backward()
        conv.zero_grad()
        xg.grad = None

    return {"forward_ms": 1000 * _median_seconds(fwd, 5), "forward_backward_ms": 1000 * _median_seconds(fwd_bwd, 3)}


def child_torch_mynet(threads: str) -> dict[str, float]:
    """Article 1's MyNet in PyTorch, one SGD-momentum step on a batch of 64 (no data pipeline)."""
    torch = _torch(threads)
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(3, 32, 3, 1, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 0), nn.ReLU(),
                          nn.Conv2d(64, 64, 3, 2, 0), nn.ReLU(), nn.Conv2d(64, 64, 3, 2, 1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(64 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))

    def step() -> None:
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    seconds = _median_seconds(step, 20, warmup=3)
    return {"train_img_per_s": 64 / seconds, "step_ms": 1000 * seconds}


CHILDREN = {"conv": child_conv, "bias": child_bias, "data": child_data, "train": child_train, "torch_conv": child_torch_conv,
            "torch_mynet": child_torch_mynet}


def _run_child(kind: str, args: list[str], env: dict[str, str], torch_dir: str | None) -> dict[str, float] | None:
    if kind.startswith("torch") and not torch_dir:
        return None
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **env, "PYTHONPATH": str(REPO)}
    if "MKL_DEBUG_CPU_TYPE" not in env:  # the train variants set it through trainer.mkl_amd_avx2
        environment.pop("MKL_DEBUG_CPU_TYPE", None)
    if torch_dir:
        environment["TORCH_DIR"] = torch_dir
    proc = subprocess.run([sys.executable, __file__, "--child", kind, *args], env=environment, capture_output=True,
                          text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        print(f"  {kind} {args} {env} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1])


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3g} [{min(values):.3g}–{max(values):.3g}]"


def run_experiment(name: str, rounds: int, torch_dir: str | None) -> None:
    variants = EXPERIMENTS[name]
    results: list[list[dict[str, float] | None]] = [[] for _ in variants]
    for r in range(rounds):
        for i, (label, kind, args, env) in enumerate(variants):
            results[i].append(_run_child(kind, args, env, torch_dir))
        print(f"  {name}: round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    metrics = [k for k in (results[0][0] or {})]
    print(f"\n### {name} ({rounds} rounds; median [min–max]; ratio = variant / first variant within a round)\n")
    print("| variant | " + " | ".join(f"{m} | ratio" for m in metrics) + " |")
    print("|---|" + "---:|---:|" * len(metrics))
    for (label, *_), runs in zip(variants, results):
        cells = []
        for m in metrics:
            values = [run[m] for run in runs if run and m in run]
            ratios = [run[m] / base[m] for run, base in zip(runs, results[0]) if run and base and m in run]
            cells += [_spread(values) if values else "–", _spread(ratios) if ratios else "–"]
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default=",".join(EXPERIMENTS), help="comma-separated: " + ", ".join(EXPERIMENTS))
    parser.add_argument("--torch", default=None, help="a directory holding torch, for the PyTorch references")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import warnings

        warnings.filterwarnings("ignore")
        kind, *rest = args.child
        print(json.dumps(CHILDREN[kind](*rest)))
        return
    print(f"bench_cpu_paths: {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, "
          f"{_cpu_model()}, Python {sys.version.split()[0]}")
    for name in args.only.split(","):
        run_experiment(name, args.rounds, args.torch)


def _cpu_model() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown CPU"


if __name__ == "__main__":
    main()
