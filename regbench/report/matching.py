"""Where a run belongs in an article: the row whose overrides its config satisfies, the table of several, the budget."""
from __future__ import annotations

from typing import Any, Sequence

from regbench.reg import combination
from regbench.articles import Article
from regbench.report.runs import MISSING, Run, parse_overrides, values_equal


def satisfies(run: Run, key: str, expected: Any) -> bool:
    """Whether the run's `key` is `expected` (a reg setting of a regularizer the run does not use always is)."""
    actual = run.value(key)
    if key in run.choices:  # a list of reg options is recorded as its label
        return actual == (combination.join(expected) if key == "reg" and isinstance(expected, list) else expected)
    if expected is None:
        return actual is None or actual is MISSING
    if run.unused(key):  # e.g. the CIFAR-100 table's reg.cutout.size=8 under reg=none
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


def _table_index(scopes: Sequence[dict[str, Any]], run: Run) -> int:
    """The first of the article's tables whose own overrides the run satisfies, -1 if none."""
    return next((i for i, scope in enumerate(scopes) if all(satisfies(run, k, v) for k, v in scope.items())), -1)


def by_table(article: Article | None, runs: Sequence[Run]) -> list[tuple[Article | None, list[Run]]]:
    """The runs of each of the article's tables, in the article's order, then those of none of them (no article's
    rows)."""
    if article is None or not article.tables:
        return [(article, list(runs))]
    parts = article.parts()
    scopes = [parse_overrides(part.scope) for part in parts]
    found: dict[int, list[Run]] = {}
    for run in runs:
        found.setdefault(_table_index(scopes, run), []).append(run)
    return [(parts[i] if i >= 0 else None, found[i]) for i in sorted(found, key=lambda i: (i < 0, i))]


def row_label(articles: dict[str, Article], run: Run) -> tuple[str, set[str]] | None:
    """The label of the article row the run reproduces (in the table it belongs to), with the keys that label stands
    for (the rows' own, not a table's); None when the run reproduces no row."""
    article = articles.get(run.choices.get("experiment"))
    if article is None:
        return None
    part: Article | None = article
    if article.tables:
        parts = article.parts()
        index = _table_index([parse_overrides(p.scope) for p in parts], run)
        part = parts[index] if index >= 0 else None
    index = match_row(part, run) if part is not None else None
    return None if index is None else (part.rows[index].label, grid_keys(article))
