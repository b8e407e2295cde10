"""Rows compared across tasks: when the runs span several values of a key (`dataset`, a model), each row's mean per
task ranked, the Friedman test of the mean ranks with a critical-difference diagram (Nemenyi, Demšar 2006), and the
aggregate probability of improvement of each row over the baseline (rliable; Agarwal et al. 2021)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from regbench.atomic_files import write_text
from regbench.errors import UserError
from regbench.report.aggregate import LOWER_IS_BETTER, known_direction, metric_values, require_metric
from regbench.report.cd_diagram import draw_cd_diagram
from regbench.report.ranks import RESAMPLES, critical_difference, friedman, improvement
from regbench.report.runs import ABSENT, DEFAULT_BASELINES, PathLike, Run, format_value, group_runs
from regbench.report.stats import LEVEL
from regbench.run_dir import across_tasks_md, critical_difference_png

Row = tuple[str, ...]


def _by_task(runs: Sequence[Run], by: str, metric: str) -> tuple[list[str], list[str], dict[Row, dict[str, list]]]:
    """The tasks (values of `by`), the keys that tell rows apart, and each row's values of `metric` per task, over
    the completed runs."""
    completed = [r for r in runs if r.status == "completed"]
    tasks = sorted({format_value(r.value(by)) for r in completed} - {ABSENT})
    if not tasks:
        raise UserError(f"--by {by}: no completed run has it; give a config key or group whose value tells the tasks "
                        "apart, e.g. --by dataset")
    groups, varying = group_runs(completed)
    keys = [k for k in varying if k != by and not k.startswith(f"{by}.")]
    found: dict[Row, dict[str, list]] = {}
    for group in groups:
        row = tuple(group.values[k] for k in keys)
        for run in group.runs:
            found.setdefault(row, {}).setdefault(format_value(run.value(by)), []).extend(metric_values([run], metric))
    return tasks, keys, found


def _baseline(keys: Sequence[str], rows: Sequence[Row], chosen: tuple[str, str] | None) -> Row | None:
    """The row with --baseline KEY=VALUE (a UserError when none has it), else reg=none (or act=relu) when the rows
    vary that key; None if none."""
    for key, value in [chosen] if chosen else DEFAULT_BASELINES:
        matching = [row for row in rows if key in keys and row[keys.index(key)] == value]
        if matching:
            return matching[0]
    if chosen:
        raise UserError(f"--baseline {chosen[0]}={chosen[1]}: no row on every task has it; the rows differ in "
                        f"{', '.join(keys) or 'nothing'}")
    return None


def _name(keys: Sequence[str], row: Row) -> str:
    return ", ".join(f"{k}={v}" for k, v in zip(keys, row)) or "the row"


def across_tasks(runs: Sequence[Run], out_dir: PathLike, by: str, metric: str,
                 baseline: tuple[str, str] | None = None, higher_is_better: bool | None = None) -> str | None:
    """The Markdown section of the rows across the tasks `by` tells apart (None with one task), its diagram
    written into `out_dir`."""
    require_metric(runs, metric)
    higher = known_direction(metric) if higher_is_better is None else higher_is_better
    tasks, keys, found = _by_task(runs, by, metric)
    if len(tasks) < 2:
        return None
    rows = [row for row, per_task in found.items() if all(per_task.get(t) for t in tasks)]
    left_out = [row for row in found if row not in rows]
    if len(rows) < 2:
        raise UserError(f"--by {by}: fewer than 2 rows have {metric} on every one of {', '.join(tasks)}; the rows are "
                        f"compared only on tasks they all have runs of")
    sign = 1.0 if higher else -1.0
    means = np.array([[sign * np.mean(found[row][t]) for row in rows] for t in tasks])
    test = friedman(means)
    cd = critical_difference(len(rows), len(tasks))
    names = [_name(keys, row) for row in rows]
    png = critical_difference_png(by, metric)
    draw_cd_diagram(Path(out_dir) / png, names, test.mean_ranks, cd,
                    f"{metric} across {len(tasks)} values of {by}: mean rank (1 = best)")
    base = _baseline(keys, rows, baseline)
    level = f"{round(100 * LEVEL)}%"
    headers = ["row", "mean rank", *(f"{by}={t}" for t in tasks)]
    headers += [f"P(improvement) vs {_name(keys, base)}", f"{level} CI"] if base else []
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    order = sorted(range(len(rows)), key=lambda j: test.mean_ranks[j])
    for j in order:
        row = rows[j]
        cells = [names[j], f"{test.mean_ranks[j]:.2f}"]
        cells += [f"{sign * means[i, j]:.4f} ({len(found[row][t])})" for i, t in enumerate(tasks)]
        if base is not None and row == base:
            cells += ["baseline", ""]
        elif base is not None:
            estimate, (low, high) = improvement([[sign * v for v in found[row][t]] for t in tasks],
                                                [[sign * v for v in found[base][t]] for t in tasks])
            cells += [f"{estimate:.2f}", f"[{low:.2f}, {high:.2f}]"]
        lines.append("| " + " | ".join(cells) + " |")
    direction = "higher" if higher else f"lower ({LOWER_IS_BETTER})"
    notes = [
        f"Each cell: the row's mean {metric} over its completed runs on that task (their number in brackets); the "
        f"rows ranked within each task, 1 the best ({direction} is better), ties sharing their mean rank.",
        f"Friedman test of the mean ranks over {len(tasks)} tasks and {len(rows)} rows: χ²_F = {test.statistic:.3f} "
        f"({len(rows) - 1} df), p = {test.p:.3g}. Nemenyi's critical difference at the {round(100 * (1 - LEVEL))}% "
        f"level: CD = {cd:.2f}; rows whose mean ranks differ by more than CD differ (Demšar 2006), those joined by a "
        f"line in [the diagram]({png}) are not told apart. With few tasks only large differences in rank can reach "
        "it.",
    ]
    if base is not None:
        notes.append(
            f"P(improvement): the aggregate probability of improvement over {_name(keys, base)} (rliable; Agarwal et "
            f"al. 2021): the mean over tasks of P(a run of the row beats a run of the baseline on that task), ties "
            f"½, with a {level} stratified bootstrap interval ({RESAMPLES:,} resamples of the runs within each task "
            "and row, percentile, a fixed seed).")
    else:
        notes.append("No baseline row: --baseline KEY=VALUE names one for the probability of improvement.")
    if left_out:
        notes.append("Left out (no completed run on some task): " + "; ".join(_name(keys, r) for r in left_out) + ".")
    title = f"## {metric} across {by}: {', '.join(tasks)}"
    return "\n".join([title, "", *lines, *(f"\n{note}" for note in notes), ""])


def write_across_tasks(runs: Sequence[Run], out_dir: PathLike, by: str, metric: str,
                       baseline: tuple[str, str] | None = None, higher_is_better: bool | None = None) -> str | None:
    """Write across_<by>_<metric>.md and its critical-difference diagram into `out_dir` when the runs span several
    values of `by`; return the Markdown (None with one task, nothing written)."""
    markdown = across_tasks(runs, out_dir, by, metric, baseline, higher_is_better)
    if markdown is not None:
        write_text(Path(out_dir) / across_tasks_md(by, metric), markdown)
    return markdown
