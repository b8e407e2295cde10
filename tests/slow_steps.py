"""`regbench ARGS` whose every training step first sleeps SECONDS: `python slow_steps.py SECONDS ARGS`.

Test-only: the tests of stopping a data-parallel run start it in place of the `regbench` script to train with steps as
slow as a large model's (the step itself is regbench's own, unchanged); regbench has no such hook. It imports the
trainer, and so Paddle, before regbench starts, which can then set nothing Paddle reads as it loads
(trainer.mkl_amd_avx2): slower steps are the point here."""
from __future__ import annotations

import sys
import time
from typing import Any

from regbench.cli import main
from regbench.train.loop import Trainer


def slow_down(seconds: float) -> None:
    """Every Trainer's train_step sleeps `seconds` before it steps."""
    step = Trainer.train_step

    def slow_step(self: Trainer, *args: Any) -> Any:
        time.sleep(seconds)
        return step(self, *args)

    Trainer.train_step = slow_step  # type: ignore[method-assign]


if __name__ == "__main__":
    slow_down(float(sys.argv.pop(1)))
    main()
