"""A signal asks the trainer to stop: it finishes its step, writes a checkpoint and stops (Interrupted)."""
from __future__ import annotations

import logging
import signal
from contextlib import contextmanager
from typing import Any, Iterator

from regbench.train.loop import Interrupted, Trainer

log = logging.getLogger("regbench")


@contextmanager
def stop_on_signals(trainer: Trainer) -> Iterator[None]:
    """First SIGINT/SIGTERM: finish the step, checkpoint, stop. A second SIGINT (Ctrl-C) quits at once; a repeated
    SIGTERM is the same request, since senders repeat it (paddle.distributed.launch sends its workers up to three,
    0.2 s apart; a preemption signals every process of a node) and follow up with SIGKILL themselves."""
    def request_stop(signum: int, frame: Any) -> None:
        if trainer.stop_signal is None:
            log.warning("signal %d: stopping after this step%s", signum,
                        " (press Ctrl-C again to quit at once)" if signum == signal.SIGINT else "")
        trainer.stop_signal = trainer.stop_signal or signum
        signal.signal(signal.SIGINT, signal.default_int_handler)

    try:
        previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: leave signals to the launcher
        previous = {}
    try:
        yield
    except Interrupted:
        # the process now exits with 128 + the signal; a SIGTERM repeated meanwhile, which the sender may still be
        # doing (the stop can come within a second), must not kill it first: not before the ranks have met after
        # rank 0 wrote summary.json, nor as Python exits (it restores the default action of signals it handles, not
        # of ignored ones)
        if signal.SIGTERM in previous:  # handled here, in the main thread
            del previous[signal.SIGTERM]
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
