"""`regbench table`: runs grouped by the choices that differ, aggregated over seeds, beside the articles' numbers."""
from __future__ import annotations

import csv
import io
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from regbench.files import write_text
from regbench.report.runs import MISSING, PathLike, Run, find_runs, group_runs, parse_overrides, values_equal

ARTICLES_FILE = Path(__file__).with_name("articles.yaml")
TABLE_MD = "table.md"
TABLE_CSV = "table.csv"
# runs of no known article: metric -> header
GENERIC_COLUMNS = {"final_val_acc": "final val acc", "best_val_acc": "best val acc", "test_acc": "test acc",
                   "total_params": "params", "epochs_completed": "epochs"}
NONE = "—"
OFF_SETUP = "†"  # marks an article row run with a setup the article's grid does not have


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

    @property
    def published_columns(self) -> list[str]:
        return [m for m in self.columns if any(m in r.published for r in self.rows)]


def load_articles(path: PathLike = ARTICLES_FILE) -> dict[str, Any]:
    """The articles' columns, published numbers and run grids, keyed by experiment name."""
    return yaml.safe_load(Path(path).read_text())


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def metric_value(run: Run, metric: str) -> float | int | None:
    """A summary.json field, `KEY@E` (metrics.jsonl KEY at epoch E) or `max:KEY` (largest KEY in metrics.jsonl)."""
    if metric.startswith("max:"):
        found = [r[metric[4:]] for r in run.metrics if _number(r.get(metric[4:]))]
        return max(found) if found else None
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


def _grid(article: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [parse_overrides(row.get("overrides", [])) for row in article["rows"]]


def match_row(article: Mapping[str, Any], run: Run) -> int | None:
    """Index of the first article row whose overrides the run's config satisfies."""
    for i, row in enumerate(_grid(article)):
        if all(_satisfies(run, k, v) for k, v in row.items()):
            return i
    return None


def off_grid(article: Mapping[str, Any], run: Run) -> list[str]:
    """The run's overrides that the article's grid never varies (e.g. trainer.epochs): not the article's setup."""
    grid_keys = {k for row in _grid(article) for k in row} | {"experiment"}
    # +experiment/NAME=ROW picks one of the grid's variants (conf/experiment/NAME/ROW.yaml): part of the grid
    return [k for k in run.overrides if k not in grid_keys and not k.lstrip("+").startswith("experiment/")]


def _section(experiment: str | None, runs: Sequence[Run], article: Mapping[str, Any] | None) -> Section:
    groups, varying = group_runs(runs)
    columns = dict(article["columns"]) if article else dict(GENERIC_COLUMNS)
    rows: list[tuple[tuple[int, int, bool, int], Row]] = []
    changed: set[str] = set()
    for position, g in enumerate(groups):
        index = match_row(article, g.runs[0]) if article else None
        off = off_grid(article, g.runs[0]) if index is not None else []
        spec = article["rows"][index] if index is not None else {}
        label, published = spec.get("label", NONE), dict(spec.get("published") or {})
        if off:  # the article's row, set up differently: name it, but set no numbers beside it
            changed.update(off)
            label, published = f"{label} {OFF_SETUP}", {}
        stats = {m: aggregate([v for v in (metric_value(r, m) for r in g.runs) if v is not None]) for m in columns}
        # the article's rows first, in its order, each before its variants; then the rest as grouped
        order = (0, index, bool(off), position) if index is not None else (1, 0, False, position)
        rows.append((order, Row(g.values, label, g.status, g.runs, stats, published)))
    rows.sort(key=lambda pair: pair[0])
    common = {k: v for k, v in groups[0].values.items() if k not in varying}
    notes = [f"{OFF_SETUP} not the article's setup ({', '.join(sorted(changed))} changed): its numbers are left out"
             ] if changed else []
    if article:
        title = article["title"]
    else:
        title = f"experiment={experiment}" if experiment else "Runs without an experiment"
    return Section(title, varying, common, columns, [r for _, r in rows], article is not None, notes)


def build_sections(runs: Sequence[Run], articles: Mapping[str, Any] | None = None) -> list[Section]:
    """One section per experiment choice, with the article's columns when the experiment is one of the articles."""
    articles = load_articles() if articles is None else articles
    by_experiment: dict[str | None, list[Run]] = {}
    for run in runs:
        by_experiment.setdefault(run.choices.get("experiment"), []).append(run)
    ordered = sorted(by_experiment.items(), key=lambda kv: (kv[0] is None, str(kv[0])))
    return [_section(exp, rs, articles.get(exp) if exp else None) for exp, rs in ordered]


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
    stat, published = row.stats.get(metric), row.published.get(metric)
    if row.status != "completed" or stat is None or published is None:
        return None
    return stat.mean - published


def _cells(section: Section, row: Row) -> list[str]:
    cells = [row.values[k] for k in section.keys]
    if section.article:
        cells.append(row.label)
    cells += [row.status, str(len(row.runs))]
    for m in section.columns:
        cells.append(format_stat(row.stats[m], len(row.runs)))
        if m in section.published_columns:
            integer = isinstance(row.published.get(m), int)
            published, diff = row.published.get(m), _diff(row, m)
            cells.append(NONE if published is None else _fmt(published, integer))
            cells.append("" if diff is None else _fmt(diff, integer, sign=True))
    return cells


def _headers(section: Section) -> list[str]:
    headers = list(section.keys) + (["row"] if section.article else []) + ["status", "n"]
    for m, header in section.columns.items():
        headers.append(header)
        if m in section.published_columns:
            headers += [f"{header} (article)", f"{header} Δ"]
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
        if s.notes:
            out += ["", *s.notes]
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
    """One line per row of every section; numbers unformatted: mean, std, n, article value and difference."""
    records: list[dict[str, Any]] = []
    for s in sections:
        for row in s.rows:
            record: dict[str, Any] = {"table": s.title, **row.values, "row": row.label if s.article else "",
                                      "status": row.status, "n": len(row.runs)}
            for m in s.columns:
                stat = row.stats[m]
                record.update({f"{m}_mean": stat.mean if stat else "", f"{m}_std": stat.std if stat and stat.std
                               is not None else "", f"{m}_n": stat.n if stat else 0})
                if m in s.published_columns:
                    diff = _diff(row, m)
                    record.update({f"{m}_article": row.published.get(m, ""), f"{m}_diff": "" if diff is None else diff})
            records.append(record)
    fields = list(dict.fromkeys(k for rec in records for k in rec))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buf.getvalue()


def save_table(runs: Sequence[Run], out_dir: PathLike) -> str:
    """Write table.md and table.csv into `out_dir`; return the Markdown."""
    out = Path(out_dir)
    sections = build_sections(runs)
    markdown = render_markdown(sections, root=out)
    write_text(out / TABLE_MD, markdown)
    write_text(out / TABLE_CSV, render_csv(sections))
    return markdown


def write_table(dirs: Sequence[PathLike]) -> str:
    """`regbench table DIR...`: the table of every run under `dirs`, written into the first DIR; returns Markdown."""
    return save_table(find_runs(dirs), dirs[0])
