"""The sections of `regbench table` as Markdown: per section a heading, the shared setup, the table and notes."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from regbench.report.aggregate import Stat
from regbench.report.correction import HEADERS, UNADJUSTED
from regbench.report.power import MOST_SEEDS, POWER
from regbench.report.runs import Run
from regbench.report.sections import NONE, NOT_APPLICABLE, Row, Section
from regbench.report.stats import PAIRED, Difference
from regbench.run_dir import SUMMARY


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


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def seeds_text(seeds: float | None) -> str:
    """The seeds for 80% power as tables show them: a number, "> 50" beyond the search, n/a when undefined."""
    if seeds is None:
        return NOT_APPLICABLE
    return f"> {MOST_SEEDS}" if math.isinf(seeds) else f"{seeds:.0f}"


def _compared(section: Section) -> int:
    """Cells of a comparison: Δ, 95% CI, p, the adjusted p (unless none), test, P(A>B), its 95% CI, seeds."""
    return 7 + (section.correction != UNADJUSTED)


def _test(row: Row, d: Difference) -> str:
    """"Welch", "paired", or "paired (k seeds)" when the pairs are fewer than the runs of either row."""
    if d.test != PAIRED:
        return "Welch"
    return "paired" if {d.pairs} == set(row.comparison.sizes) else f"paired ({d.pairs} seeds)"


def _significance(section: Section, row: Row) -> list[str]:
    """Δ, 95% CI, p, the adjusted p, test, P(A>B), its 95% CI and the seeds for 80% power: "baseline" on the
    baseline row, blank where nothing is compared, n/a with its reason."""
    if row.is_baseline:
        return ["baseline"] + (_compared(section) - 1) * [""]
    if row.comparison is None:
        return _compared(section) * [""]
    d, beats = row.comparison.difference, row.comparison.beats
    integer = all(s.integer for s in (row.stats.get(section.compare),) if s)
    cells = [_fmt(d.delta, integer, sign=True)]
    adjusted = section.correction != UNADJUSTED
    if d.ci is None:
        cells += (2 + adjusted) * [f"{NOT_APPLICABLE} ({d.undefined})"]
    else:
        cells += [f"[{_fmt(d.ci[0], integer, sign=True)}, {_fmt(d.ci[1], integer, sign=True)}]", _p(d.p)]
        cells += [_p(d.p_adjusted)] if adjusted else []
    cells += [_test(row, d), f"{beats.estimate:.2f}"]
    cells.append(f"{NOT_APPLICABLE} ({beats.undefined})" if beats.ci is None else
                 f"[{beats.ci[0]:.2f}, {beats.ci[1]:.2f}]")
    cells.append(seeds_text(row.comparison.seeds))
    return cells


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
            published, diff = row.published.get(m), row.versus_article(m)
            cells.append(NONE if published is None else _fmt(published, integer))
            cells.append("" if diff is None else _fmt(diff, integer, sign=True))
    if section.baseline:
        cells += _significance(section, row)
    return cells


def _headers(section: Section) -> list[str]:
    headers = list(section.keys) + (["row"] if section.article else []) + (["budget"] if section.budgets else [])
    headers += ["selected on", "status", "n"]
    for m, header in section.columns.items():
        headers.append(section.header(m))
        if m in section.published_columns:
            headers += [f"{header} (article)", f"{header} − article"]
    if section.baseline:
        adjusted = [HEADERS[section.correction]] if section.correction in HEADERS else []
        headers += [f"Δ vs {section.baseline}", "95% CI", "p", *adjusted, "test", "P(A>B)", "P(A>B) 95% CI",
                    f"seeds for {POWER:.0%} power"]
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
                error = run.summary.get("error") or (f"no {SUMMARY}" if status == "missing" else "")
                seed = run.summary.get("seed", run.config.get("seed") if run.config is not None else None)
                out.append(f"- {status}: {_run_name(run, root)} (seed {seed})" + (f": {error}" if error else ""))
        out.append("")
    return "\n".join(out)
