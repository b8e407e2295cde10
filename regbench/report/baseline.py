"""Each row of a table against its baseline row: which row that is, the difference of one metric, and the summary."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Collection, Sequence

from regbench.errors import UserError
from regbench.report.aggregate import LOWER_IS_BETTER, metric_values
from regbench.report.pairing import paired_values
from regbench.report.power import paired_seeds, welch_seeds
from regbench.report.runs import ABSENT, DEFAULT_BASELINES, Group, Run
from regbench.report.stats import LEVEL, TESTS, UNDEFINED, Difference, paired, welch
from regbench.report.superiority import Superiority, superiority

MIN_PAIRS = 2  # seeds both rows have, for the paired test; with fewer, Welch's over all runs

# a sweep of no article is compared with its unregularized / plain-activation row when it has one
@dataclass(frozen=True)
class Baseline:
    """Which rows are baselines (`chosen`), named `label`; a row's baseline also agrees with it on every varying key
    that is neither `defining` nor absent from one of the two (e.g. a setting a row changes besides the grid)."""
    label: str
    chosen: Callable[[Group], bool]
    defining: Collection[str]


def parse_baseline(text: str) -> tuple[str, str]:
    """`KEY=VALUE` of `regbench table --baseline` as (key, value)."""
    key, sep, value = text.partition("=")
    if not sep or not key or not value:
        raise UserError(f"--baseline {text!r} must be KEY=VALUE, e.g. --baseline reg=none")
    return key, value


def by_value(key: str, value: str, defining: Collection[str] = ()) -> Baseline:
    """The rows whose `key` shows `value` (as the table displays it)."""
    return Baseline(f"{key}={value}", lambda g: g.values.get(key) == value, {key, *defining})


def default_baseline(groups: Sequence[Group], varying: Sequence[str]) -> Baseline | None:
    """reg=none (or act=relu) when the sweep varies that key and has such a row; else no baseline."""
    for key, value in DEFAULT_BASELINES:
        if key in varying and any(g.values.get(key) == value for g in groups):
            return by_value(key, value)
    return None


def _agree(a: Group, b: Group, keys: Sequence[str]) -> bool:
    return all(a.values[k] == b.values[k] or ABSENT in (a.values[k], b.values[k]) for k in keys)


def baseline_of(group: Group, groups: Sequence[Group], baseline: Baseline, varying: Sequence[str]) -> Group | None:
    """The completed baseline row `group` is compared with (itself if it is one); None if there is none."""
    context = [k for k in varying if k not in baseline.defining]
    for candidate in groups:
        if candidate.status == "completed" and baseline.chosen(candidate) and _agree(group, candidate, context):
            return candidate
    return None


@dataclass(frozen=True)
class Comparison:
    """A row against its baseline in one metric: the difference with its interval and p (paired or Welch), and
    P(a run of the row beats one of the baseline), and the seeds the same test needs for 80% power."""
    difference: Difference
    beats: Superiority
    sizes: tuple[int, int]  # runs with the metric: the row's, the baseline's
    seeds: float | None = None  # report/power.py: inf beyond its MOST_SEEDS, None when the test is undefined


def compare(runs: Sequence[Run], base: Sequence[Run], metric: str, higher_is_better: bool = True) -> Comparison | None:
    """The row's runs against its baseline's (None when either has no value): paired over the seeds both have when
    they have at least MIN_PAIRS, else Welch over all runs, with the seeds that test needs; P(A>B) over all runs."""
    values, base_values = metric_values(runs, metric), metric_values(base, metric)
    if not values or not base_values:
        return None
    mine, theirs = paired_values(runs, base, metric)
    if len(mine) >= MIN_PAIRS:
        difference, seeds = paired(mine, theirs), paired_seeds([x - y for x, y in zip(mine, theirs)])
    else:
        difference, seeds = welch(values, base_values), welch_seeds(values, base_values)
    return Comparison(difference, superiority(values, base_values, higher_is_better), (len(values), len(base_values)),
                      None if difference.p is None else seeds)


def undefined_reasons(differences: Collection[Difference]) -> dict[str, str]:
    """The n/a tags among `differences`, each with what it means for the tests that gave it."""
    found = {(d.test, d.undefined) for d in differences}
    texts: dict[str, list[str]] = {}
    for (test, tag), text in UNDEFINED.items():
        if (test, tag) in found:
            texts.setdefault(tag, []).append(text)
    return {tag: ", or ".join(found_texts) for tag, found_texts in texts.items()}


def summary_line(label: str, header: str, differences: dict[str, Difference], runs_per_row: str,
                 higher_is_better: bool = True) -> str:
    """Which rows are better or worse than the baseline at the 5% level and by which test (once when all used the
    same), and what `runs_per_row` runs can detect."""
    tested = {row: d for row, d in differences.items() if d.p is not None}
    level = f"{round(100 * (1 - LEVEL))}%"
    if not tested:
        why = "; ".join(undefined_reasons(differences.values()).values())
        return f"No row can be tested against {label} ({why}): no {header} difference can be tested (n/a)."
    one_test = len({d.test for d in tested.values()}) == 1
    test = f" ({TESTS[next(iter(tested.values())).test]})" if one_test else ""
    metric = header if higher_is_better else f"{header} ({LOWER_IS_BETTER})"

    def names(rows: list[str]) -> str:
        return ", ".join(row if one_test else f"{row} ({TESTS[tested[row].test]})" for row in rows)

    better = [row for row, d in tested.items() if d.significant and (d.delta > 0) == higher_is_better]
    worse = [row for row, d in tested.items() if d.significant and row not in better]
    same = [row for row, d in tested.items() if not d.significant]
    parts: list[str] = []
    for rows, one, many, preposition in ((better, "is better", "are better", "than"),
                                         (worse, "is worse", "are worse", "than"),
                                         (same, "does not differ", "do not differ", "from")):
        if rows:  # the first part names the baseline, the metric and the test; the others only how they compare
            verb = one if len(rows) == 1 else many
            parts.append(f"{names(rows)} {verb}" + ("" if parts else
                                                    f" {preposition} {label} in {metric} at the {level} level{test}"))
    return "; ".join(parts) + (f". With n={runs_per_row} runs per row only large effects are detectable: no "
                               "significant difference is not evidence of no effect.")
