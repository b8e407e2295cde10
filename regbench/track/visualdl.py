"""VisualDL log files in the run folder (PaddlePaddle's dashboard)."""
from __future__ import annotations

from pathlib import Path

from regbench.run_dir import VISUALDL_LOG
from regbench.track import RunInfo, WriterTracker
from regbench.track.tensorboard import config_markdown


def logged_steps(path: Path, tag: str = "val/acc") -> list[int]:
    """The steps at which `tag` was written to a VisualDL log file."""
    from visualdl import LogReader

    return [int(r.id) for r in LogReader(file_path=str(path)).get_data("scalar", tag)]


class VisualDLTracker(WriterTracker):
    """Scalars (losses, accuracies, lr, img/s) at every evaluation, the composed config as text."""

    def __init__(self, run: RunInfo, subdir: str) -> None:
        from visualdl import LogWriter

        path = run.folder / subdir / VISUALDL_LOG
        self.logged_step = max(logged_steps(path), default=-1) if run.resume and path.is_file() else -1
        self.writer = LogWriter(logdir=str(path.parent), file_name=VISUALDL_LOG)
        if self.logged_step < 0:
            self.writer.add_text("config", config_markdown(run.config), 0)
            self.writer.flush()
