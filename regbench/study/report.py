"""`regbench report DIR...`: the study's report folder in the first DIR — README.md, one table per metric (each row
against the baseline), the curves, one pooled reliability diagram per row, the corruption figure when the runs scored
corruptions, the uncertainty table when they scored MC passes or ensembles."""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Sequence

from regbench.atomic_files import write_text
from regbench.articles import Article, articles_by_experiment, load_article
from regbench.errors import UserError
from regbench.report.aggregate import metric_values
from regbench.report.correction import HOLM
from regbench.report.plot import plot_runs
from regbench.report.runs import PathLike, Run, find_runs
from regbench.report.table import save_metric_tables
from regbench.run_dir import (CORRUPTION_FIGURE, PLOT_PNG, REPORT_DIR, REPORT_README, STUDY, UNCERTAINTY_MD,
                              metric_table_md, probs_npz, read_json)
from regbench.study.corruption_figure import write_corruption_figure
from regbench.study.readme import Contents, readme
from regbench.study.reliability import write_pooled
from regbench.study.rows import named_rows
from regbench.study.uncertainty import uncertainty_table


def article_of(runs: Sequence[Run], name: str | None) -> Article | None:
    """The article `name`, else the one whose experiment the runs ran (None when they ran none or several)."""
    if name:
        return load_article(name)
    found = {r.choices.get("experiment") for r in runs}
    by_experiment = articles_by_experiment()
    return by_experiment.get(found.pop()) if len(found) == 1 else None


def tabled(runs: Sequence[Run], article: Article | None) -> tuple[str, ...]:
    """The article's declared metrics, else test_acc when the runs have it and best_val_acc otherwise."""
    if article is not None:
        return article.tabled
    return ("test_acc",) if any(r.summary.get("test_acc") is not None for r in runs) else ("best_val_acc",)


def across_tasks(runs: Sequence[Run], out: Path, article: Article | None) -> str | None:
    """The verdict across an article's tables (one per dataset): Friedman's test, the critical-difference diagram and
    the aggregate probability of improvement, as Markdown; None for an article of one table."""
    if article is None or len(article.parts()) < 2:
        return None
    from regbench.report.across_tasks import write_across_tasks

    return write_across_tasks(runs, out, "dataset", article.compare)


def write_report(dirs: Sequence[PathLike], article_name: str | None = None, correction: str = HOLM) -> Path:
    """The report folder of every run under `dirs`, in the first DIR; returns its README's path."""
    runs = find_runs(dirs)
    if not runs:
        raise UserError(f"no run folders under {', '.join(str(d) for d in dirs)}: pass sweep or run folders")
    article = article_of(runs, article_name)
    if article_name and article is not None and not any(r.choices.get("experiment") == article.experiment
                                                        for r in runs):
        raise UserError(f"--article {article_name}: no run under the folders ran its experiment "
                        f"{article.experiment}; leave --article out to label rows by the swept keys")
    first = Path(dirs[0])
    out = first / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    study = read_json(first / STUDY) or {}
    contents = Contents()
    metrics = tabled(runs, article)
    present = [m for m in metrics if metric_values(runs, m)]
    contents.missing = [m for m in metrics if m not in present]
    for metric, markdown in save_metric_tables(runs, out, present, correction=correction).items():
        contents.tables[metric] = (metric_table_md(metric), markdown)
    contents.figures.append(("validation accuracy and training loss per row", plot_runs(runs, out / PLOT_PNG).name))
    rows = named_rows(runs)
    evaluate = article.evaluate if article else None
    probs = probs_npz(evaluate.splits[0] if evaluate else "test", evaluate.checkpoint if evaluate else "best")
    for name, png, ece, n in write_pooled(rows, out, probs):
        contents.figures.append((f"reliability of {name}, its seeds pooled (n={n}, ECE {ece:.4f})", png.name))
    figure = write_corruption_figure(rows, out / CORRUPTION_FIGURE)
    if figure is not None:
        contents.figures.append(("error under each corruption relative to the baseline row", figure.name))
    uncertainty = uncertainty_table(rows, metrics)
    if uncertainty is not None:
        write_text(out / UNCERTAINTY_MD, uncertainty)
        contents.uncertainty = (UNCERTAINTY_MD, uncertainty)
    contents.across = across_tasks(runs, out, article)
    command = "regbench report " + " ".join(shlex.quote(str(d)) for d in dirs) + (
        f" --article {article_name}" if article_name else "") + f" --correction {correction}"
    title = article.title if article else f"Study of {len(runs)} runs"
    citation = article.citation if article else "no article: the sweep's own comparison"
    path = out / REPORT_README
    write_text(path, readme(title, citation, runs, article, study, command, contents))
    return path
