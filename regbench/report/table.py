"""`regbench table`: runs grouped by the choices that differ, aggregated over seeds, beside the articles' numbers,
each row against a baseline row (difference, 95% CI, p)."""
from __future__ import annotations

import csv
import io
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from regbench.articles import Article, articles_by_experiment
from regbench.errors import UserError
from regbench.files import write_text
from regbench.report.baseline import Baseline, baseline_of, by_value, compare, default_baseline, summary_line
from regbench.report.runs import (MISSING, PathLike, Run, find_runs, format_value, group_runs, parse_overrides,
                                  values_equal)
from regbench.report.stats import Difference

TABLE_MD = "table.md"
TABLE_CSV = "table.csv"
# runs of no known article: metric -> header
GENERIC_COLUMNS = {"final_val_acc": "final val acc", "best_val_acc": "best val acc", "test_acc": "test acc",
                   "final_test_acc": "final test acc", "total_params": "params", "epochs_completed": "epochs"}
# added to an article's columns when runs were selected on a held-out val split and so have a test accuracy
TEST_COLUMNS = {"test_acc": "test acc (best val)", "final_test_acc": "test acc (last)"}
NONE = "—"
NOT_APPLICABLE = "n/a"
OFF_SETUP = "†"  # marks an article row run with a setup the article's grid and budgets do not have
SELECTED_ON = {"val": "held-out val", "test": "test set"}  # summary.json selected_on -> what the table says


@dataclass(frozen=True)
class Stat:
    """One metric over the runs of a row: mean, sample standard deviation (None for a single value), count."""
    mean: float
    std: float | None
    n: int
    integer: bool                 # every value was an int (parameter counts, epochs)


@dataclass
class Row:
    values: dict[str, str]        # the group's identity: key -> display value
    label: str                    # the article row the group reproduces, NONE if none
    status: str
    runs: list[Run]
    stats: dict[str, Stat | None]
    published: dict[str, float]
    budget: str | None            # the article budget the runs were made with (None: no article, or not a budget)
    selected_on: str              # where the checkpoint was selected: held-out val or the test set
    is_baseline: bool = False
    difference: Difference | None = None   # of the section's compare metric against the row's baseline


@dataclass
class Section:
    """One table: the runs of one experiment (or of none)."""
    title: str
    keys: list[str]               # identity keys that differ between rows: the table's first columns
    common: dict[str, str]        # identity keys equal in every row
    columns: dict[str, str]       # metric -> header
    rows: list[Row]
    article: bool
    notes: list[str]              # lines printed under the table
    compare: str | None = None    # the metric of the Δ / 95% CI / p columns (None: no baseline)
    baseline: str | None = None   # the baseline's name in the headers

    @property
    def published_columns(self) -> list[str]:
        return [m for m in self.columns if any(m in r.published for r in self.rows)]

    @property
    def budgets(self) -> bool:
        """Whether some row was made with a reduced budget of the article (the table then names each row's)."""
        return any(r.budget not in (None, "full") for r in self.rows)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def metric_value(run: Run, metric: str) -> float | int | None:
    """A summary.json field, `KEY@E` (metrics.jsonl KEY at epoch E), `max:KEY` (largest KEY in metrics.jsonl) or
    `last:KEY` (KEY of the last metrics.jsonl line that has it)."""
    kind, _, key = metric.rpartition(":")
    if kind in ("max", "last"):
        found = [r[key] for r in run.metrics if _number(r.get(key))]
        return (max(found) if kind == "max" else found[-1]) if found else None
    if "@" in metric:
        key, epoch = metric.split("@")
        for r in reversed(run.metrics):
            if _number(r.get("epoch")) and abs(r["epoch"] - float(epoch)) < 5e-4 and _number(r.get(key)):
                return r[key]
        return None
    value = run.summary.get(metric)
    return value if _number(value) else None


def aggregate(values: Sequence[float | int]) -> Stat | None:
    if not values:
        return None
    std = statistics.stdev(values) if len(values) > 1 else None
    return Stat(statistics.fmean(values), std, len(values), all(isinstance(v, int) for v in values))


def _satisfies(run: Run, key: str, expected: Any) -> bool:
    actual = run.value(key)
    if key in run.choices:
        return actual == expected
    if expected is None:
        return actual is None or actual is MISSING
    return values_equal(actual, expected)


def _grid(article: Article) -> list[dict[str, Any]]:
    return [parse_overrides(row.overrides) for row in article.rows]


def grid_keys(article: Article) -> set[str]:
    """The keys the article's rows set, and `experiment`."""
    return {k for row in _grid(article) for k in row} | {"experiment"}


def match_row(article: Article, run: Run) -> int | None:
    """Index of the first article row whose overrides the run's config satisfies."""
    for i, row in enumerate(_grid(article)):
        if all(_satisfies(run, k, v) for k, v in row.items()):
            return i
    return None


def off_grid(article: Article, run: Run) -> list[str]:
    """The run's overrides that the article's grid never varies (e.g. trainer.epochs): not the article's setup."""
    keys = grid_keys(article)
    return [k for k in run.overrides if k not in keys]


def budget_of(article: Article, run: Run) -> str | None:
    """The article budget the run was made with: "full" without off-grid overrides, else the budget whose overrides
    are exactly the run's off-grid ones; None when no budget is (e.g. the held-out variant dataset.val_size=5000)."""
    off = set(off_grid(article, run))
    if not off:
        return "full"
    for name, budget in article.budgets.items():
        wanted = parse_overrides(budget.overrides)
        if set(wanted) == off and all(_satisfies(run, k, v) for k, v in wanted.items()):
            return name
    return None


def _selected_on(runs: Sequence[Run], article: bool) -> str:
    found = sorted({SELECTED_ON.get(r.summary.get("selected_on"), NONE) for r in runs})
    text = " / ".join(found)
    return f"{text} (as the article)" if article and text == SELECTED_ON["test"] else text


def _columns(article: Article | None, runs: Sequence[Run]) -> dict[str, str]:
    if article is None:
        return dict(GENERIC_COLUMNS)
    columns = dict(article.columns)
    for metric, header in TEST_COLUMNS.items():
        if metric not in columns and any(metric_value(r, metric) is not None for r in runs):
            columns[metric] = header
    return columns


def _section(experiment: str | None, runs: Sequence[Run], article: Article | None,
             chosen: tuple[str, str] | None) -> Section:
    groups, varying = group_runs(runs)
    columns = _columns(article, runs)
    rows: list[tuple[tuple[int, int, bool, int], Row]] = []
    changed: set[str] = set()
    for position, g in enumerate(groups):
        index = match_row(article, g.runs[0]) if article else None
        spec = article.rows[index] if article and index is not None else None
        budget = budget_of(article, g.runs[0]) if spec else None
        label, published = (spec.label, dict(spec.published)) if spec else (NONE, {})
        if spec and budget is None:  # the article's row, set up differently: name it, but set no numbers beside it
            changed.update(off_grid(article, g.runs[0]))
            label, published = f"{label} {OFF_SETUP}", {}
        stats = {m: aggregate([v for v in (metric_value(r, m) for r in g.runs) if v is not None]) for m in columns}
        # the article's rows first, in its order, each before its variants; then the rest as grouped
        order = (0, index, budget != "full", position) if spec else (1, 0, False, position)
        rows.append((order, Row(g.values, label, g.status, g.runs, stats, published, budget,
                                _selected_on(g.runs, article is not None))))
    rows.sort(key=lambda pair: pair[0])
    common = {k: v for k, v in groups[0].values.items() if k not in varying}
    notes = [f"{OFF_SETUP} not the article's setup ({', '.join(sorted(changed))} changed): its numbers are left out"
             ] if changed else []
    if article:
        title = article.title
    else:
        title = f"experiment={experiment}" if experiment else "Runs without an experiment"
    section = Section(title, varying, common, columns, [r for _, r in rows], article is not None, notes)
    if article and section.published_columns:
        shown = {r.label for r in section.rows if r.published}
        own = [f"{row.label}: {row.citation}" for row in article.rows if row.citation and row.label in shown]
        notes.append(f"The article's numbers: {article.citation}" + (f"; {'; '.join(own)}" if own else "") + ".")
    if section.budgets:
        notes.append("budget: the article's own (full) or a reduction its file names; beside a reduced row the "
                     "article's numbers stand for reference, without a difference.")
    metric = article.compare if article else _generic_compare(section)
    _compare(section, groups, varying, _baseline(article, groups, varying, chosen), metric)
    return section


def _baseline(article: Article | None, groups: Sequence[Any], varying: Sequence[str],
              chosen: tuple[str, str] | None) -> Baseline | None:
    """--baseline KEY=VALUE when some row has it, else the article's baseline row, else the generic default."""
    defining = grid_keys(article) if article else ()
    if chosen and any(g.values.get(chosen[0]) == chosen[1] for g in groups):
        return by_value(*chosen, defining=defining)
    if article:
        index = [r.label for r in article.rows].index(article.baseline)
        return Baseline(article.baseline, lambda g: match_row(article, g.runs[0]) == index, defining)
    return default_baseline(groups, varying)


def _compare(section: Section, groups: Sequence[Any], varying: Sequence[str], baseline: Baseline | None,
             metric: str) -> None:
    """Fill each completed row's difference to its baseline in `metric`, and the lines saying what they mean."""
    if baseline is None:
        if section.keys:
            section.notes.append("No baseline row: `regbench table --baseline KEY=VALUE DIR` names one (e.g. "
                                 "reg=none) for Δ, 95% CI and p.")
        return
    section.compare, section.baseline = metric, baseline.label
    by_runs = {id(g.runs[0]): g for g in groups}
    differences: dict[str, Difference] = {}
    sizes: set[int] = set()
    for row in section.rows:
        if row.status != "completed":
            continue
        group = by_runs[id(row.runs[0])]
        base = baseline_of(group, groups, baseline, varying)
        if base is group:
            row.is_baseline = True
            continue
        if base is None:
            continue
        values = [v for v in (metric_value(r, metric) for r in row.runs) if v is not None]
        base_values = [v for v in (metric_value(r, metric) for r in base.runs) if v is not None]
        row.difference = compare(values, base_values)
        if row.difference is not None:
            differences[_row_name(section, row)] = row.difference
        if row.difference is not None and row.difference.p is not None:
            sizes.update((len(values), len(base_values)))
    header = section.columns[metric]
    section.notes.append(f"Δ vs {baseline.label}: {header} minus that of the {baseline.label} row with the same other "
                         f"settings; 95% CI (Welch) and p (Welch's t-test) over the runs; {NOT_APPLICABLE}: fewer "
                         f"than 2 runs on a side.")
    if differences:
        runs = "" if not sizes else f"{min(sizes)}" if len(sizes) == 1 else f"{min(sizes)}–{max(sizes)}"
        section.notes.append(summary_line(baseline.label, header, differences, runs))


def _generic_compare(section: Section) -> str:
    """Runs of no article are compared in test_acc when some have it (held-out val), else in best_val_acc."""
    has_test = any(metric_value(r, "test_acc") is not None for row in section.rows for r in row.runs)
    return "test_acc" if has_test else "best_val_acc"


def _row_name(section: Section, row: Row) -> str:
    if section.article:
        return row.label
    return ", ".join(f"{k}={row.values[k]}" for k in section.keys) or "the row"


def build_sections(runs: Sequence[Run], articles: dict[str, Article] | None = None,
                   baseline: tuple[str, str] | None = None) -> list[Section]:
    """One section per experiment choice, with the article's columns when the experiment is one of the articles;
    `baseline` (KEY, VALUE) overrides every section's baseline row where some row has it."""
    articles = articles_by_experiment() if articles is None else articles
    if baseline is not None:
        key, value = baseline
        found = sorted({format_value(run.value(key)) for run in runs})
        if value not in found:
            raise UserError(f"--baseline {key}={value} matches no run: {key} is one of {', '.join(found)}")
    by_experiment: dict[str | None, list[Run]] = {}
    for run in runs:
        by_experiment.setdefault(run.choices.get("experiment"), []).append(run)
    ordered = sorted(by_experiment.items(), key=lambda kv: (kv[0] is None, str(kv[0])))
    return [_section(exp, rs, articles.get(exp) if exp else None, baseline) for exp, rs in ordered]


# -- rendering ------------------------------------------------------------------------------------------------------

def _fmt(value: float, integer: bool, sign: bool = False) -> str:
    return format(value, ("+" if sign else "") + (",.0f" if integer else ".4f"))


def format_stat(stat: Stat | None, rows_n: int) -> str:
    """`mean ± std`, the count added when only some runs of the row have the metric."""
    if stat is None:
        return NONE
    if stat.integer and not stat.std:
        text = _fmt(stat.mean, integer=True)
    elif stat.integer:
        text = f"{stat.mean:,.1f} ± {stat.std:,.1f}"
    else:
        text = _fmt(stat.mean, integer=False) + ("" if stat.std is None else f" ± {stat.std:.4f}")
    return text + (f" (n={stat.n})" if stat.n != rows_n else "")


def _diff(row: Row, metric: str) -> float | None:
    """Ours minus the article's, for completed rows made with the article's own budget."""
    stat, published = row.stats.get(metric), row.published.get(metric)
    if row.status != "completed" or stat is None or published is None or row.budget != "full":
        return None
    return stat.mean - published


def _significance(section: Section, row: Row) -> list[str]:
    """Δ, 95% CI and p cells: "baseline" on the baseline row, blank where nothing is compared."""
    if row.is_baseline:
        return ["baseline", "", ""]
    d = row.difference
    if d is None:
        return ["", "", ""]
    integer = bool(section.compare) and all(s.integer for s in (row.stats.get(section.compare),) if s)
    delta = _fmt(d.delta, integer, sign=True)
    if d.ci is None:
        return [delta, NOT_APPLICABLE, NOT_APPLICABLE]
    ci = f"[{_fmt(d.ci[0], integer, sign=True)}, {_fmt(d.ci[1], integer, sign=True)}]"
    return [delta, ci, "<0.001" if d.p < 0.001 else f"{d.p:.3f}"]


def _cells(section: Section, row: Row) -> list[str]:
    cells = [row.values[k] for k in section.keys]
    if section.article:
        cells.append(row.label)
    if section.budgets:
        cells.append(row.budget or NONE)
    cells += [row.selected_on, row.status, str(len(row.runs))]
    for m in section.columns:
        cells.append(format_stat(row.stats[m], len(row.runs)))
        if m in section.published_columns:
            integer = isinstance(row.published.get(m), int)
            published, diff = row.published.get(m), _diff(row, m)
            cells.append(NONE if published is None else _fmt(published, integer))
            cells.append("" if diff is None else _fmt(diff, integer, sign=True))
    if section.compare:
        cells += _significance(section, row)
    return cells


def _headers(section: Section) -> list[str]:
    headers = list(section.keys) + (["row"] if section.article else []) + (["budget"] if section.budgets else [])
    headers += ["selected on", "status", "n"]
    for m, header in section.columns.items():
        headers.append(header)
        if m in section.published_columns:
            headers += [f"{header} (article)", f"{header} − article"]
    if section.compare:
        headers += [f"Δ vs {section.baseline}", "95% CI", "p"]
    return headers


def _md_line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _run_name(run: Run, root: Path | None) -> str:
    if root is not None:
        try:
            return str(run.path.relative_to(root.resolve())) or "."
        except ValueError:
            pass
    return str(run.path)


def render_markdown(sections: Sequence[Section], root: Path | None = None) -> str:
    """Markdown: per section a heading, the setup shared by all rows, the table and the runs that did not complete."""
    out: list[str] = []
    for s in sections:
        out += [f"## {s.title}", ""]
        if s.common:
            out += ["Same in all runs: " + ", ".join(f"{k}={v}" for k, v in s.common.items()), ""]
        headers = _headers(s)
        out += [_md_line(headers), "|" + "|".join("---" for _ in headers) + "|"]
        out += [_md_line(_cells(s, r)) for r in s.rows]
        for note in s.notes:
            out += ["", note]
        unfinished = [(r.status, run) for r in s.rows if r.status != "completed" for run in r.runs]
        if unfinished:
            out += ["", "Not completed (never averaged with the completed runs):"]
            for status, run in unfinished:
                error = run.summary.get("error") or ("no summary.json" if status == "missing" else "")
                seed = run.summary.get("seed", run.config.get("seed") if run.config is not None else None)
                out.append(f"- {status}: {_run_name(run, root)} (seed {seed})" + (f": {error}" if error else ""))
        out.append("")
    return "\n".join(out)


def render_csv(sections: Sequence[Section]) -> str:
    """One line per row of every section; numbers unformatted: mean, std, n, article value and difference, and the
    difference to the baseline row with its 95% CI and p."""
    records: list[dict[str, Any]] = []
    for s in sections:
        for row in s.rows:
            record: dict[str, Any] = {"table": s.title, **row.values, "row": row.label if s.article else "",
                                      "budget": row.budget or "", "selected_on": row.selected_on,
                                      "status": row.status, "n": len(row.runs)}
            for m in s.columns:
                stat = row.stats[m]
                record.update({f"{m}_mean": stat.mean if stat else "", f"{m}_std": stat.std if stat and stat.std
                               is not None else "", f"{m}_n": stat.n if stat else 0})
                if m in s.published_columns:
                    diff = _diff(row, m)
                    record.update({f"{m}_article": row.published.get(m, ""),
                                   f"{m}_vs_article": "" if diff is None else diff})
            if s.compare:
                d = row.difference
                record.update(compare=s.compare, baseline=s.baseline, is_baseline=row.is_baseline,
                              delta="" if d is None else d.delta, ci_low="" if d is None or d.ci is None else d.ci[0],
                              ci_high="" if d is None or d.ci is None else d.ci[1],
                              p="" if d is None or d.p is None else d.p)
            records.append(record)
    fields = list(dict.fromkeys(k for rec in records for k in rec))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buf.getvalue()


def save_table(runs: Sequence[Run], out_dir: PathLike, baseline: tuple[str, str] | None = None) -> str:
    """Write table.md and table.csv into `out_dir`; return the Markdown."""
    out = Path(out_dir)
    sections = build_sections(runs, baseline=baseline)
    markdown = render_markdown(sections, root=out)
    write_text(out / TABLE_MD, markdown)
    write_text(out / TABLE_CSV, render_csv(sections))
    return markdown


def write_table(dirs: Sequence[PathLike], baseline: tuple[str, str] | None = None) -> str:
    """`regbench table DIR...`: the table of every run under `dirs`, written into the first DIR; returns Markdown."""
    return save_table(find_runs(dirs), dirs[0], baseline)
