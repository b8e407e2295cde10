"""`regbench reproduce ARTICLE`: an article's whole grid as one Hydra multirun, from report/articles.yaml."""
from __future__ import annotations

from regbench.errors import UserError
from regbench.report.table import load_articles

# command-line name -> experiment config (conf/experiment/NAME.yaml) and key in articles.yaml
ARTICLES = {"dropblock": "dropblock_mynet", "dropout": "dropout_lenet", "dyrelu": "dyrelu_resnet18", "nndl": "nndl_cnn"}
BUDGETS = ("full", "quick")


def sweep_overrides(article: str, budget: str, overrides: list[str]) -> list[str]:
    """The `regbench train` arguments that run `article`'s grid at `budget`, followed by the user's overrides."""
    if article not in ARTICLES:
        raise UserError(f"unknown article {article!r}; choose one of: {', '.join(ARTICLES)}")
    if budget not in BUDGETS:
        raise UserError(f"unknown budget {budget!r}; choose full or quick")
    experiment = ARTICLES[article]
    spec = load_articles()[experiment]
    plan = spec["budgets"][budget]
    seeds = ",".join(str(s) for s in plan["seeds"])
    return ["-m", *spec["sweep"], f"seed={seeds}", *plan.get("overrides", []),
            f"hydra.sweep.dir=outputs/reproduce/{article}-{budget}/${{now:%Y-%m-%d_%H-%M-%S.%f}}", *overrides]
