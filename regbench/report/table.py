"""`regbench table`: runs grouped by the choices that differ, aggregated over seeds, beside the articles' numbers,
each row against a baseline row in one metric (difference, 95% CI, p, P(A>B)), written as table.md and table.csv."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from regbench.atomic_files import write_text
from regbench.report.csvtable import render_csv
from regbench.report.markdown import render_markdown
from regbench.report.runs import PathLike, Run, find_runs
from regbench.report.sections import build_sections
from regbench.run_dir import TABLE_CSV, TABLE_MD, metric_table_csv, metric_table_md


def save_table(runs: Sequence[Run], out_dir: PathLike, baseline: tuple[str, str] | None = None,
               metric: str | None = None, higher_is_better: bool | None = None) -> str:
    """Write table.md and table.csv into `out_dir`, rows compared in `metric` when given (else each table's own);
    return the Markdown."""
    out = Path(out_dir)
    sections = build_sections(runs, baseline=baseline, metric=metric, higher_is_better=higher_is_better)
    markdown = render_markdown(sections, root=out)
    write_text(out / TABLE_MD, markdown)
    write_text(out / TABLE_CSV, render_csv(sections))
    return markdown


def save_metric_tables(runs: Sequence[Run], out_dir: PathLike, metrics: Sequence[str],
                       baseline: tuple[str, str] | None = None, correction: str = "holm") -> dict[str, str]:
    """table_<metric>.md and .csv in `out_dir` for each metric, rows compared in it; returns metric -> Markdown."""
    # `correction` is accepted for the signature the statistics rework (branch i26-stats) provides; the lead merges
    # that version, which adjusts the p-values over every comparison of the report
    out = Path(out_dir)
    written = {}
    for metric in metrics:
        sections = build_sections(runs, baseline=baseline, metric=metric)
        written[metric] = render_markdown(sections, root=out)
        write_text(out / metric_table_md(metric), written[metric])
        write_text(out / metric_table_csv(metric), render_csv(sections))
    return written


def write_table(dirs: Sequence[PathLike], baseline: tuple[str, str] | None = None, metric: str | None = None,
                higher_is_better: bool | None = None) -> str:
    """`regbench table DIR...`: the table of every run under `dirs`, written into the first DIR; returns Markdown."""
    return save_table(find_runs(dirs), dirs[0], baseline, metric, higher_is_better)
