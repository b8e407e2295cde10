"""The tables of `regbench table` as data: runs grouped into rows, one section per experiment (or article table),
each row beside the article's numbers and against its baseline row."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

from regbench.articles import Article, articles_by_experiment
from regbench.errors import UserError
from regbench.report.baseline import (MIN_PAIRS, Baseline, Comparison, baseline_of, by_value, compare,
                                      default_baseline, summary_line, undefined_reasons)
from regbench.report.matching import budget_of, by_table, grid_keys, match_row, off_grid
from regbench.report.aggregate import (LOWER_IS_BETTER, Stat, aggregate, direction, known_direction, metric_value,
                                     metric_values, require_metric)
from regbench.report.runs import Group, Run, format_value, group_runs
from regbench.report.correction import CORRECTIONS, HEADERS, HOLM, UNADJUSTED, adjust, check_correction
from regbench.report.power import MOST_SEEDS, POWER
from regbench.report.stats import FEW_RUNS, LEVEL, Difference

# runs of no known article: metric -> header
GENERIC_COLUMNS = {"final_val_acc": "final val acc", "best_val_acc": "best val acc", "test_acc": "test acc",
                   "final_test_acc": "final test acc", "total_params": "params", "epochs_completed": "epochs"}
# added to an article's columns when runs were selected on a held-out val split and so have a test accuracy
TEST_COLUMNS = {"test_acc": "test acc (best val)", "final_test_acc": "test acc (last)"}
NONE = "—"
NOT_APPLICABLE = "n/a"
OFF_SETUP = "†"  # marks an article row run with a setup the article's grid and budgets do not have
SELECTED_ON = {"val": "held-out val", "test": "test set"}  # summary.json selected_on -> what the table says


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
    comparison: Comparison | None = None   # of the section's compare metric against the row's baseline

    @property
    def difference(self) -> Difference | None:
        return None if self.comparison is None else self.comparison.difference

    def versus_article(self, metric: str) -> float | None:
        """Ours minus the article's, for completed rows made with the article's own budget."""
        stat, published = self.stats.get(metric), self.published.get(metric)
        if self.status != "completed" or stat is None or published is None or self.budget != "full":
            return None
        return stat.mean - published


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
    compare: str                  # the metric of the Δ / 95% CI / p / P(A>B) columns
    higher_is_better: bool        # in `compare`
    baseline: str | None = None   # the baseline's name in the headers (None: no baseline, nothing compared)
    correction: str = HOLM        # how the p of the report's comparisons were adjusted together (report/correction.py)

    def header(self, metric: str) -> str:
        """The column's header, saying so where lower is better."""
        higher = self.higher_is_better if metric == self.compare else direction(metric)
        return self.columns[metric] + (f" ({LOWER_IS_BETTER})" if higher is False else "")

    @property
    def published_columns(self) -> list[str]:
        return [m for m in self.columns if any(m in r.published for r in self.rows)]

    @property
    def budgets(self) -> bool:
        """Whether some row was made with a reduced budget of the article (the table then names each row's)."""
        return any(r.budget not in (None, "full") for r in self.rows)


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
             chosen: tuple[str, str] | None, ranked: tuple[str, bool] | None) -> Section:
    groups, varying = group_runs(runs)
    columns = _columns(article, runs)
    if ranked is None:
        metric = article.compare if article else default_metric(runs)
        ranked = metric, known_direction(metric)
    columns.setdefault(ranked[0], ranked[0])
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
        stats = {m: aggregate(metric_values(g.runs, m)) for m in columns}
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
    section = Section(title, varying, common, columns, [r for _, r in rows], article is not None, notes, *ranked)
    if article and section.published_columns:
        shown = {r.label for r in section.rows if r.published}
        own = [f"{row.label}: {row.citation}" for row in article.rows if row.citation and row.label in shown]
        notes.append(f"The article's numbers: {article.citation}" + (f"; {'; '.join(own)}" if own else "") + ".")
    if section.budgets:
        notes.append("budget: the article's own (full) or a reduction its file names; beside a reduced row the "
                     "article's numbers stand for reference, without a difference.")
    _compare(section, groups, varying, _baseline(article, groups, varying, chosen))
    return section


def _baseline(article: Article | None, groups: Sequence[Group], varying: Sequence[str],
              chosen: tuple[str, str] | None) -> Baseline | None:
    """--baseline KEY=VALUE when some row has it, else the article's baseline row, else the generic default."""
    defining = grid_keys(article) if article else ()
    if chosen and any(g.values.get(chosen[0]) == chosen[1] for g in groups):
        return by_value(*chosen, defining=defining)
    if article:
        index = [r.label for r in article.rows].index(article.baseline)
        return Baseline(article.baseline, lambda g: match_row(article, g.runs[0]) == index, defining)
    return default_baseline(groups, varying)


def _compare(section: Section, groups: Sequence[Group], varying: Sequence[str], baseline: Baseline | None) -> None:
    """Fill each completed row's comparison with its baseline in the section's metric, and the lines saying what
    they mean (conclude adds the verdict once every table of the report is compared)."""
    if baseline is None:
        if section.keys:
            section.notes.append("No baseline row: `regbench table --baseline KEY=VALUE DIR` names one (e.g. "
                                 "reg=none) for Δ, 95% CI and p.")
        return
    metric, higher_is_better = section.compare, section.higher_is_better
    section.baseline = baseline.label
    by_runs = {id(g.runs[0]): g for g in groups}
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
        row.comparison = compare(row.runs, base.runs, metric, higher_is_better)
    header = section.columns[metric]
    reasons = undefined_reasons([r.comparison.difference for r in section.rows if r.comparison])
    level = f"{round(100 * LEVEL)}%"
    section.notes.append(
        f"Δ vs {baseline.label}: {header} minus that of the {baseline.label} row with the same other settings"
        + ("" if higher_is_better else f" ({LOWER_IS_BETTER}: a negative Δ is an improvement)")
        + f", with its {level} CI and p by the test the `test` column names: paired when at least {MIN_PAIRS} seeds "
        "have a run in both rows (over those seeds only: Δ is then the mean of the per-seed differences; paired "
        "t-test), else Welch over all runs (Welch–Satterthwaite interval, Welch's t-test)"
        + "".join(f"; {NOT_APPLICABLE} ({tag}): {text}" for tag, text in reasons.items()) + ".")
    section.notes.append(
        f"P(A>B): the probability that a run of the row beats a run of the {baseline.label} row in {header} "
        f"({'higher' if higher_is_better else 'lower'} is better; 0.5: neither tends to win), the Mann–Whitney "
        f"estimate over all their runs (ties count ½), with Newcombe's (2006) Method 5 score {level} interval, "
        f"continuity-corrected ({NOT_APPLICABLE} ({FEW_RUNS}) with fewer than 2 runs on a side).")
    section.notes.append(
        f"seeds for {round(100 * POWER)}% power: the runs per row (paired: seeds) at which the same test would detect "
        f"the observed Δ at the {round(100 * (1 - LEVEL))}% level, given the observed spread; > {MOST_SEEDS} when "
        "not within that.")


def _adjust(sections: Sequence[Section], correction: str) -> int:
    """Adjust the p of every comparison of `sections` together (one family); the number of comparisons."""
    compared = [r for s in sections for r in s.rows if r.comparison and r.comparison.difference.p is not None]
    adjusted = adjust([r.comparison.difference.p for r in compared], correction)
    for row, p in zip(compared, adjusted):
        row.comparison = replace(row.comparison, difference=replace(row.comparison.difference, p_adjusted=p))
    return len(compared)


def _correction_note(correction: str, family: int, tables: int) -> str:
    """The line saying how the p of the report's `family` comparisons (over `tables` tables) were adjusted."""
    scope = f"{family} comparison{'s' if family > 1 else ''} of this " + (
        f"report ({tables} tables)" if tables > 1 else "table")
    if correction == UNADJUSTED:
        return (f"p not adjusted for multiple comparisons (--correction none): of the {scope}, about "
                f"{family * (1 - LEVEL):.1f} reach p < {1 - LEVEL:g} by chance when no row differs.")
    return (f"{HEADERS[correction]}: p adjusted by {CORRECTIONS[correction]} over the {scope}; the line below reads it "
            f"(--correction {'|'.join(CORRECTIONS)}).")


def conclude(sections: Sequence[Section], correction: str) -> None:
    """Adjust the p of every comparison of `sections` as one family, then add under each table how, and which rows
    are better or worse than their baseline by the adjusted p."""
    family = _adjust(sections, correction)
    tables = sum(1 for s in sections if any(r.comparison and r.comparison.difference.p is not None for r in s.rows))
    for section in sections:
        section.correction = correction
        differences = {_row_name(section, r): r.comparison.difference for r in section.rows if r.comparison}
        tested = [r.comparison for r in section.rows if r.comparison and r.comparison.difference.p is not None]
        if tested:
            section.notes.append(_correction_note(correction, family, tables))
        if differences:
            sizes = {n for c in tested for n in ((c.difference.pairs,) if c.difference.pairs else c.sizes)}
            runs = "" if not sizes else f"{min(sizes)}" if len(sizes) == 1 else f"{min(sizes)}–{max(sizes)}"
            section.notes.append(summary_line(section.baseline, section.columns[section.compare], differences, runs,
                                              section.higher_is_better))


def default_metric(runs: Sequence[Run]) -> str:
    """Runs of no article are compared in test_acc when some have it (held-out val), else in best_val_acc."""
    return "test_acc" if any(metric_value(r, "test_acc") is not None for r in runs) else "best_val_acc"


def _row_name(section: Section, row: Row) -> str:
    if section.article:
        return row.label
    return ", ".join(f"{k}={row.values[k]}" for k in section.keys) or "the row"


def build_sections(runs: Sequence[Run], articles: dict[str, Article] | None = None,
                   baseline: tuple[str, str] | None = None, metric: str | None = None,
                   higher_is_better: bool | None = None, correction: str = HOLM) -> list[Section]:
    """One section per experiment choice, with the article's columns when the experiment is one of the articles;
    `baseline` (KEY, VALUE) overrides every section's baseline row where some row has it, `metric` every section's
    compared metric (with its direction from regbench.metrics unless `higher_is_better` says it); the p of all
    sections adjusted together by `correction`."""
    check_correction(correction)
    sections = _sections(runs, articles, baseline, metric, higher_is_better)
    conclude(sections, correction)
    return sections


def metric_sections(runs: Sequence[Run], metrics: Sequence[str], baseline: tuple[str, str] | None = None,
                    correction: str = HOLM, articles: dict[str, Article] | None = None) -> dict[str, list[Section]]:
    """The sections of each metric (its direction from regbench.metrics), the p of all of them adjusted as one
    family (rows × metrics)."""
    check_correction(correction)
    if not metrics:
        raise UserError("no metric to table: name at least one (--metric NAME)")
    found = {m: _sections(runs, articles, baseline, m, None) for m in dict.fromkeys(metrics)}
    conclude([s for sections in found.values() for s in sections], correction)
    return found


def _sections(runs: Sequence[Run], articles: dict[str, Article] | None, baseline: tuple[str, str] | None,
              metric: str | None, higher_is_better: bool | None) -> list[Section]:
    """The sections before their p are adjusted and their verdicts written (conclude)."""
    articles = articles_by_experiment() if articles is None else articles
    ranked = None
    if metric is not None:
        require_metric(runs, metric)
        ranked = metric, (known_direction(metric) if higher_is_better is None else higher_is_better)
    if baseline is not None:
        key, value = baseline
        found = sorted({format_value(run.value(key)) for run in runs})
        if value not in found:
            raise UserError(f"--baseline {key}={value} matches no run: {key} is one of {', '.join(found)}")
    by_experiment: dict[str | None, list[Run]] = {}
    for run in runs:
        by_experiment.setdefault(run.choices.get("experiment"), []).append(run)
    ordered = sorted(by_experiment.items(), key=lambda kv: (kv[0] is None, str(kv[0])))
    return [_section(exp, part_runs, part, baseline, ranked) for exp, rs in ordered
            for part, part_runs in by_table(articles.get(exp) if exp else None, rs)]
