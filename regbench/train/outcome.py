"""A run's outcome: its status in summary.json (running, then completed, interrupted, diverged or failed, with the
error and the wall time), its trackers told the same, and the exit code of the process that trained it."""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import paddle

from regbench import run_dir
from regbench.errors import UserError
from regbench.atomic_files import WriteFailed, remove_temporaries
from regbench.track import Trackers
from regbench.train.loop import Diverged, Interrupted

log = logging.getLogger("regbench")


@contextmanager
def recorded(folder: Path, summary: dict[str, Any], earlier_s: float, open_trackers: Callable[[], Trackers],
             exit_on_failure: bool) -> Iterator[Trackers]:
    """Record the outcome of the block, which trains the run in `folder` and keeps `summary` up to date, in
    summary.json (rank 0 alone writes the run folder) and the trackers it opens; the wall time counts `earlier_s`
    of earlier attempts. A stop on a signal exits 128 + the signal; a run that did not complete otherwise exits
    non-zero with `exit_on_failure` (a sweep's other jobs go on instead, and the command exits non-zero at the end).
    """
    start = time.time() - earlier_s
    main = paddle.distributed.get_rank() == 0
    trackers = Trackers({})
    code = signum = None
    try:
        if main:
            remove_temporaries(folder)  # of a write that a kill -9 cut short
            run_dir.write_json(folder / run_dir.SUMMARY, summary)
            trackers = open_trackers()
        yield trackers
        summary["status"] = "completed"
    except KeyboardInterrupt:
        summary["status"] = "interrupted"
        raise
    except Exception as err:
        summary["status"], summary["error"], code = _failure(err)
        signum = err.signum if isinstance(err, Interrupted) else None
    finally:
        summary["wall_time_s"] = round(time.time() - start, 2)
        if main:
            code = _write_last(folder / run_dir.SUMMARY, summary) or code
        trackers.close(summary)
    if signum is not None:
        log.warning("%s", summary["error"])
        if paddle.distributed.get_world_size() > 1:  # rank 0 has written the summary before any rank exits:
            paddle.distributed.barrier()               # a launcher stops the other ranks when one exits
        raise SystemExit(128 + signum)
    if summary["status"] != "completed":
        log.error("%s: %s", summary["status"], summary["error"])
        if exit_on_failure:
            raise SystemExit(code or (2 if summary["status"] == "failed" else 1))


def _failure(err: Exception) -> tuple[str, str, int | None]:
    """(status, error, exit code when not the status's own) of what ended a run early."""
    if isinstance(err, Interrupted):
        return "interrupted", str(err), None
    if isinstance(err, WriteFailed):  # a full disk or a file-size limit: what was written before is whole and kept
        return "failed", (f"{err}; free space, then rerun with trainer.resume=true to continue from the last "
                          "checkpoint"), err.exit_code
    if isinstance(err, (UserError, Diverged)):
        return "diverged" if isinstance(err, Diverged) else "failed", str(err).splitlines()[0], None
    log.exception("training failed")  # a bug: keep the traceback in train.log, the run folder says failed
    return "failed", f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}", None


def _write_last(path: Path, summary: dict[str, Any]) -> int | None:
    """Write the final summary; when that fails, the run failed: the error says so and the exit code is returned."""
    try:
        run_dir.write_json(path, summary)
    except WriteFailed as err:
        if str(err) not in (summary["error"] or ""):  # say so, unless that is what went wrong already
            stale = f"{run_dir.SUMMARY} is not up to date either ({err.cause})"
            summary["error"] = f"{summary['error']}; {stale}" if summary["error"] else str(err)
        summary["status"] = "failed"
        return err.exit_code
    return None
