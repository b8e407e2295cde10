"""Where a run belongs in an article: the row whose overrides its config satisfies, the table of several, the budget."""
from __future__ import annotations

from typing import Any, Sequence

from regbench import regs
from regbench.articles import Article
from regbench.report.runs import MISSING, Run, parse_overrides, unused_reg_setting, values_equal


def satisfies(run: Run, key: str, expected: Any) -> bool:
    """Whether the run's `key` is `expected` (a reg setting of a regularizer the run does not use always is)."""
    actual = run.value(key)
    if key in run.choices:  # a list of reg options is recorded as its label
        return actual == (regs.join(expected) if key == "reg" and isinstance(expected, list) else expected)
    if expected is None:
        return actual is None or actual is MISSING
    if unused_reg_setting(key, run.choices.get("reg")):  # e.g. the CIFAR-100 table's reg.cutout.size=8 under reg=none
        return True
    return values_equal(actual, expected)


def _grid(article: Article) -> list[dict[str, Any]]:
    return [parse_overrides(row.overrides) for row in article.rows]


def grid_keys(article: Article) -> set[str]:
    """The keys the article's rows set, and `experiment`."""
    return {k for row in _grid(article) for k in row} | {"experiment"}


def match_row(article: Article, run: Run) -> int | None:
    """Index of the first article row whose overrides the run's config satisfies."""
    for i, row in enumerate(_grid(article)):
        if all(satisfies(run, k, v) for k, v in row.items()):
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
        if set(wanted) == off and all(satisfies(run, k, v) for k, v in wanted.items()):
            return name
    return None


def by_table(article: Article | None, runs: Sequence[Run]) -> list[tuple[Article | None, list[Run]]]:
    """The runs of each of the article's tables (the first whose own overrides a run satisfies), in the article's
    order, then those of none of them (no article's rows)."""
    if article is None or not article.tables:
        return [(article, list(runs))]
    parts = article.parts()
    scopes = [parse_overrides(part.scope) for part in parts]
    found: dict[int, list[Run]] = {}
    for run in runs:
        index = next((i for i, scope in enumerate(scopes) if all(satisfies(run, k, v) for k, v in scope.items())), -1)
        found.setdefault(index, []).append(run)
    return [(parts[i] if i >= 0 else None, found[i]) for i in sorted(found, key=lambda i: (i < 0, i))]
