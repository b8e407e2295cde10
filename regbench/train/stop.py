"""When the data-parallel ranks agree whether a signal stops the run: about every trainer.stop_check_s seconds of
training, at steps that every rank computes alike.

A signal reaches the ranks at different steps, or only one of them, and a rank that stopped on its own would leave
the others in a gradient all-reduce it never joins. So the ranks exchange what they have received in a collective
and stop together; a collective must be entered at the same steps by every rank, so which steps those are may only
depend on values every rank holds: the step count, and the step time the ranks agreed on at the previous agreement.
A rank's own clock would differ.

The agreements come every stop_check_s seconds of training, not every N steps, because what must be bounded is the
time between a signal and the checkpoint: Paddle's launcher kills its workers 30 s after it is stopped (its
controller's pod.stop(timeout=30)), SLURM after its KillWait, and N steps of a large model can take minutes. They do
not come every step either, because reading the agreed value waits for the device (on a GPU the host stops queuing
steps ahead) and for the network: at one a second this costs nothing measurable, at every step of a small model it
would.
"""
from __future__ import annotations

import math
import time

import paddle


def next_agreement(step: int, step_s: float, every_s: float) -> int:
    """The step of the agreement after one at `step`: as many steps of `step_s` seconds as fit in `every_s` seconds,
    at least one."""
    if step_s <= 0:
        return step + 1
    return step + max(1, math.floor(every_s / step_s))


class StopAgreement:
    """The data-parallel ranks' agreement on the signal to stop on, made at the same steps on every rank."""

    def __init__(self, step: int, every_s: float) -> None:
        self.every_s = every_s
        self.step, self.tick = step, time.perf_counter()  # the last agreement (at first: where training starts)
        self.next = step + 1  # the first agreement after one step also measures one
        self.last_step_s = 0.0  # seconds per step before the last agreement, from one wait for the device to the next

    def __call__(self, step: int, signum: int) -> int:
        """After `step`: the largest signal any rank has received (0: none) when the ranks agree at this step, else 0.
        Every rank must call it after every step."""
        if step < self.next:
            return 0
        # seconds per step: since the last agreement as the host saw it, which is the steps' time on the CPU but may
        # be short of it on a GPU, where the host queues steps ahead of the device; and before it, which was
        # measured between two waits for the device. The larger, because the smaller would space agreements further
        # apart than stop_check_s
        host_s = (time.perf_counter() - self.tick) / (step - self.step)
        values = paddle.to_tensor([signum, max(host_s, self.last_step_s)], dtype="float64")
        # the slowest rank's step time, the same bits on every rank, so that all compute the same next step
        paddle.distributed.all_reduce(values, op=paddle.distributed.ReduceOp.MAX)
        agreed, slowest_s = values.tolist()  # waits for the device and the other ranks
        now = time.perf_counter()
        self.last_step_s = (now - self.tick) / (step - self.step)
        self.step, self.tick = step, now
        self.next = next_agreement(step, slowest_s, self.every_s)
        return int(agreed)
