"""TensorBoard event files in the run folder, written by tensorboardX (no TensorFlow needed)."""
from __future__ import annotations

from typing import Any

import yaml

from regbench.track import RunInfo, WriterTracker


def config_markdown(config: dict[str, Any]) -> str:
    """The composed config as a Markdown code block (dashboards render text as Markdown)."""
    return "\n".join("    " + line for line in yaml.safe_dump(config, sort_keys=False).splitlines())


class TensorBoardTracker(WriterTracker):
    """Scalars (losses, accuracies, lr, img/s) at every evaluation, the composed config as text."""

    def __init__(self, run: RunInfo, subdir: str) -> None:
        from tensorboardX import SummaryWriter

        logdir = run.folder / subdir
        # a resumed run logs its whole history again: purge_step=0 hides what the earlier attempt wrote
        resumed = run.resume and logdir.is_dir() and any(logdir.iterdir())
        self.writer = SummaryWriter(logdir=str(logdir), purge_step=0 if resumed else None, flush_secs=30)
        self.writer.add_text("config", config_markdown(run.config), 0)
        self.writer.flush()
        self.logged_step = -1
