"""`regbench table`: runs grouped by the choices that differ, aggregated over seeds, beside the articles' numbers,
each row against a baseline row in one metric (difference, 95% CI, p adjusted over the report, P(A>B), seeds for 80%
power), written as table.md and table.csv, or one table per metric when several are tabled together; with a key
that tells tasks apart, the rows across them (report/across_tasks.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from regbench.atomic_files import write_text
from regbench.report.across_tasks import write_across_tasks
from regbench.report.correction import HOLM
from regbench.report.csvtable import render_csv
from regbench.report.markdown import render_markdown
from regbench.report.runs import PathLike, Run, find_runs
from regbench.report.sections import build_sections, default_metric, metric_sections
from regbench.run_dir import TABLE_CSV, TABLE_MD, metric_table_csv, metric_table_md


def save_table(runs: Sequence[Run], out_dir: PathLike, baseline: tuple[str, str] | None = None,
               metric: str | None = None, higher_is_better: bool | None = None, correction: str = HOLM) -> str:
    """Write table.md and table.csv into `out_dir`, rows compared in `metric` when given (else each table's own),
    the p of its rows adjusted by `correction`; return the Markdown."""
    out = Path(out_dir)
    sections = build_sections(runs, baseline=baseline, metric=metric, higher_is_better=higher_is_better,
                              correction=correction)
    markdown = render_markdown(sections, root=out)
    write_text(out / TABLE_MD, markdown)
    write_text(out / TABLE_CSV, render_csv(sections))
    return markdown


def save_metric_tables(runs: Sequence[Run], out_dir: PathLike, metrics: Sequence[str],
                       baseline: tuple[str, str] | None = None, correction: str = HOLM) -> dict[str, str]:
    """One table per metric (table_<metric>.md and .csv in `out_dir`), every row against its baseline, the p of all
    their comparisons (rows × metrics) adjusted together by `correction`; metric -> Markdown."""
    out = Path(out_dir)
    found = metric_sections(runs, metrics, baseline, correction)
    tables = {}
    for metric, sections in found.items():
        tables[metric] = render_markdown(sections, root=out)
        write_text(out / metric_table_md(metric), tables[metric])
        write_text(out / metric_table_csv(metric), render_csv(sections))
    return tables


def write_table(dirs: Sequence[PathLike], baseline: tuple[str, str] | None = None, metrics: Sequence[str] = (),
                higher_is_better: bool | None = None, correction: str = HOLM, by: str | None = None) -> str:
    """`regbench table DIR...`: the table of every run under `dirs` (one per metric when several), written into the
    first DIR, then with `by` the rows across the tasks it tells apart; returns the Markdown."""
    runs = find_runs(dirs)
    if len(metrics) > 1:
        parts = list(save_metric_tables(runs, dirs[0], metrics, baseline, correction).values())
    else:
        parts = [save_table(runs, dirs[0], baseline, metrics[0] if metrics else None, higher_is_better, correction)]
    for metric in (metrics or [default_metric(runs)]) if by else []:
        across = write_across_tasks(runs, dirs[0], by, metric, baseline, higher_is_better)
        parts.append(across if across is not None else
                     f"--by {by}: every run has the same {by}, so there is nothing to compare across tasks.\n")
    return "\n".join(parts)
