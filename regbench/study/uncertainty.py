"""The report's uncertainty table: per row and per tabled metric that has Monte-Carlo and ensemble counterparts
(accuracy, ECE, NLL, Brier, adaptive ECE, AURC, risk at 80% coverage), the single run (mean ± sd over the row's
seeds), MC (`mc{N}_…`, mean ± sd) and the ensemble of the row's seeds (`ensemble_…`), from the runs' eval.json."""
from __future__ import annotations

import re
from typing import Sequence

from regbench import metrics
from regbench.report.aggregate import aggregate
from regbench.report.markdown import format_stat
from regbench.report.runs import Run
from regbench.report.sections import NONE, Row

# the metrics whose figures MC passes and ensembles store too (how figure names end)
AVERAGED = tuple(metrics.METRICS[m].short or m for m in (*metrics.recorded("averaged"), *metrics.recorded("ranking")))


def counterpart(figure: str, kind: str) -> str | None:
    """The name `kind` (mc8, ensemble) gives the figure of a split's metric: test_ece -> mc8_test_ece,
    final_test_acc -> final_mc8_test_acc; None when `figure` is no split's averaged metric."""
    for short in AVERAGED:
        if figure.endswith(f"_{short}"):
            *head, split = figure.removesuffix(f"_{short}").split("_")
            return metrics.prefix(*head, kind, split, short)
    return None


def mc_samples(runs: Sequence[Run], figure: str) -> int | None:
    """The largest N of the MC figures of `figure` that the runs store (None when none)."""
    pattern = re.compile(re.escape(counterpart(figure, "mc@")).replace("@", r"(\d+)") + "$")
    found = [int(m.group(1)) for r in runs for name in r.evaluated for m in [pattern.match(name)] if m]
    return max(found) if found else None


def _values(runs: Sequence[Run], name: str) -> list[float]:
    return [float(r.evaluated[name]) for r in runs if isinstance(r.evaluated.get(name), (int, float))]


def uncertainty_table(rows: Sequence[tuple[str, Row]], tabled: Sequence[str]) -> str | None:
    """The table as Markdown, a line per row and metric with an MC or ensemble figure; None when there is none."""
    runs = [r for _, row in rows for r in row.runs]
    lines = []
    for figure in [f for f in tabled if counterpart(f, "ensemble") is not None]:
        n = mc_samples(runs, figure)
        mc, ensemble = counterpart(figure, f"mc{n}") if n else None, counterpart(figure, "ensemble")
        if mc is None and not _values(runs, ensemble):
            continue
        for name, row in rows:
            members = [r for r in row.runs if r.status == "completed"]
            single = format_stat(aggregate(_values(members, figure)), len(members))
            sampled = format_stat(aggregate(_values(members, mc)), len(members)) if mc else NONE
            averaged = _values(members, ensemble)
            lines.append(f"| {name} | {figure} | {single} | {sampled} | "
                         f"{f'{averaged[0]:.4f}' if averaged else NONE} |")
    if not lines:
        return None
    header = ("| row | metric | single run (mean ± sd over seeds) | MC (mean ± sd over seeds) "
              "| ensemble of the seeds |")
    samples = {f: n for f in tabled if counterpart(f, "mc") for n in [mc_samples(runs, f)] if n}
    n_line = (f"N = {next(iter(samples.values()))}" if len(set(samples.values())) == 1
              else ", ".join(f"{f}: N = {n}" for f, n in samples.items()))
    return "\n".join([header, "|---|---|---|---|---|", *lines, "",
                      f"MC: the mean softmax of N stochastic passes ({n_line or 'none scored'}); ensemble: the mean "
                      f"softmax of the row's seeds; {NONE}: not scored (MC needs stochastic layers, an ensemble two "
                      "seeds)."]) + "\n"
