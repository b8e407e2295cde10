"""Time regbench's layers where they run: DY-ReLU A/B/C against ReLU in ResNet18 (train step and eval), and
DropBlock's overhead on a MyNet train step. All models live in one process and are timed in interleaved rounds;
each gets its best round (other processes can only slow a round down), and ratios are of best times.

    python scripts/bench_layers.py                 # Paddle's default threads (it sets OMP_NUM_THREADS=1)
    python scripts/bench_layers.py --threads 2     # every core
    python scripts/bench_layers.py --clock cpu     # process CPU time: steadier on a busy machine (1 thread)
"""
from __future__ import annotations

import argparse
import os
import time
from typing import Callable


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS for Paddle (default: Paddle's own, 1)")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per model (after 2 warm-up steps)")
    parser.add_argument("--batch", type=int, default=32, help="ResNet18 batch size")
    parser.add_argument("--mynet-batch", type=int, default=64, help="MyNet batch size")
    parser.add_argument("--mynet-steps", type=int, default=10, help="MyNet train steps per round")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall time, or this process's CPU time (all its threads)")
    return parser.parse_args()


def interleaved(
    tasks: dict[str, Callable[[], None]], rounds: int, clock: Callable[[], float]
) -> dict[str, list[float]]:
    """Seconds per call of each task, one call per task per round, the order rotating between rounds."""
    for task in tasks.values():  # warm-up: first calls allocate and pick kernels
        task()
        task()
    names = list(tasks)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = clock()
            tasks[name]()
            times[name].append(clock() - start)
    return times


def main() -> None:
    args = parse_args()
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # must precede importing paddle, which fixes it
    import paddle
    import paddle.nn.functional as F

    from regbench.config import compose
    from regbench.models import build_model

    def model(*overrides: str) -> paddle.nn.Layer:
        cfg = compose(["dataset=cifar10", *overrides])
        return build_model(cfg.model, cfg.act, cfg.reg)

    def train_step(net: paddle.nn.Layer, images: paddle.Tensor, labels: paddle.Tensor,
                   steps: int = 1) -> Callable[[], None]:
        optimizer = paddle.optimizer.SGD(learning_rate=0.01, parameters=net.parameters())

        def run() -> None:
            net.train()
            for _ in range(steps):
                F.cross_entropy(net(images), labels).backward()
                optimizer.step()
                optimizer.clear_grad()
        return run

    def eval_step(net: paddle.nn.Layer, images: paddle.Tensor) -> Callable[[], None]:
        def run() -> None:
            net.eval()
            with paddle.no_grad():
                net(images)
        return run

    paddle.seed(0)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    print(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, paddle {paddle.__version__}, "
          f"{os.cpu_count()} CPUs, {args.rounds} interleaved rounds, {args.clock} clock")

    images, labels = paddle.randn([args.batch, 3, 32, 32]), paddle.randint(0, 10, [args.batch])
    acts = ["relu", "dyrelu_a", "dyrelu_b", "dyrelu_c"]
    nets = {act: model("model=resnet18", f"act={act}") for act in acts}
    train = interleaved({act: train_step(nets[act], images, labels) for act in acts}, args.rounds, clock)
    evals = interleaved({act: eval_step(nets[act], images) for act in acts}, args.rounds, clock)
    print(f"\nResNet18 (CIFAR), batch {args.batch}: best seconds of {args.rounds} rounds, and ratio to ReLU")
    print(f"{'act':10} {'train step':>10} {'ratio':>6} {'eval':>8} {'ratio':>6}")
    for act in acts:
        print(f"{act:10} {min(train[act]):10.3f} {min(train[act]) / min(train['relu']):6.2f} "
              f"{min(evals[act]):8.3f} {min(evals[act]) / min(evals['relu']):6.2f}")

    images, labels = paddle.rand([args.mynet_batch, 3, 32, 32]), paddle.randint(0, 10, [args.mynet_batch])
    regs = ["none", "dropblock"]
    steps = args.mynet_steps
    train = interleaved(
        {reg: train_step(model("model=mynet", f"reg={reg}"), images, labels, steps) for reg in regs}, args.rounds, clock
    )
    base, drop = (min(train[reg]) / steps * 1e3 for reg in regs)
    print(f"\nMyNet, batch {args.mynet_batch}, train step: reg=none {base:.1f} ms, reg=dropblock {drop:.1f} ms "
          f"(DropBlock overhead {100 * (drop / base - 1):+.1f}%)")


if __name__ == "__main__":
    main()
