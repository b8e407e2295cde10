"""`regbench reproduce ARTICLE`: an article's whole grid (rows × seeds) as one Hydra multirun, from its file."""
from __future__ import annotations

from regbench.articles import Article, load_article
from regbench.errors import UserError


def rows_override(article: Article) -> str:
    """The article's rows as the rows sweeper's `hydra.sweeper.rows` override (a list of lists of quoted strings)."""
    rows = ",".join("[" + ",".join(f"'{o}'" for o in row.overrides) + "]" for row in article.rows)
    return f"hydra.sweeper.rows=[{rows}]"


def sweep_overrides(name: str, budget: str, overrides: list[str]) -> list[str]:
    """The `regbench train` arguments that run article `name`'s grid at `budget`, followed by the user's overrides."""
    article = load_article(name)
    if budget not in article.budgets:
        raise UserError(f"article {name} has no budget {budget!r}; choose one of: {', '.join(article.budgets)}")
    plan = article.budgets[budget]
    seeds = ",".join(str(s) for s in plan.seeds)
    return ["-m", f"experiment={article.experiment}", "hydra/sweeper=rows", rows_override(article), f"seed={seeds}",
            *plan.overrides, f"hydra.sweep.dir=outputs/reproduce/{name}-{budget}/${{now:%Y-%m-%d_%H-%M-%S.%f}}",
            *overrides]


def check_rows(name: str, budget: str, overrides: list[str]) -> None:
    """Compose every row of the article at `budget` with the user's overrides: a row that cannot run fails before any
    job starts, in one line."""
    from regbench.config import compose

    article = load_article(name)
    for row in article.rows:
        try:
            compose([f"experiment={article.experiment}", *row.overrides, *article.budgets[budget].overrides,
                     *overrides])
        except UserError as err:
            raise UserError(f"row {row.label!r} of article {name}: {err}") from None
