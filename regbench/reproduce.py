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

