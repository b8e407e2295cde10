"""Reports over run folders (tables, plots); reads only what the trainer wrote, never imports it or Paddle."""
from __future__ import annotations

from pathlib import Path

from regbench.report.plot import plot_runs, write_plot
from regbench.report.runs import PathLike, find_runs
from regbench.report.table import save_table, write_table
from regbench.run_dir import PLOT_PNG

__all__ = ["write_report", "write_table", "write_plot"]


def write_report(sweep_dir: PathLike) -> str:
    """table.md, table.csv and plot.png of every run under `sweep_dir` (failed jobs included); returns the Markdown."""
    runs = find_runs([sweep_dir])
    markdown = save_table(runs, sweep_dir)
    plot_runs(runs, Path(sweep_dir) / PLOT_PNG)
    return markdown
