"""`regbench reproduce ARTICLE`: an article's whole grid (rows × seeds) as one Hydra multirun, from its file, into a
sweep folder named after the article, budget and overrides, so that the same command continues where it stopped."""
from __future__ import annotations

import hashlib
import importlib.util
from importlib import metadata
from pathlib import Path

from regbench.articles import Article, load_article
from regbench.errors import UserError
from regbench.train.threads import available_cores


def rows_override(article: Article) -> str:
    """The article's rows (of each of its tables) as the rows sweeper's `hydra.sweeper.rows` override (a list of lists
    of quoted strings)."""
    rows = ",".join("[" + ",".join(f"'{_escaped(o)}'" for o in row.overrides) + "]"
                    for part in article.parts() for row in part.rows)
    return f"hydra.sweeper.rows=[{rows}]"


def sweep_overrides(name: str, budget: str, overrides: list[str]) -> list[str]:
    """The `regbench train` arguments that run article `name`'s grid at `budget`, followed by the user's overrides."""
    article = load_article(name)
    if budget not in article.budgets:
        raise UserError(f"article {name} has no budget {budget!r}; choose one of: {', '.join(article.budgets)}")
    plan = article.budgets[budget]
    seeds = ",".join(str(s) for s in plan.seeds)
    # trainer.resume: a run the same command completed is skipped, one it left unfinished continues from its checkpoint
    return ["-m", f"experiment={article.experiment}", "hydra/sweeper=rows", rows_override(article), f"seed={seeds}",
            *plan.overrides, f"hydra.sweep.dir={sweep_folder(name, budget, overrides)}", "trainer.resume=true",
            *overrides]


def sweep_folder(name: str, budget: str, overrides: list[str]) -> Path:
    """The study's sweep folder: the same for the same article, budget and overrides (default: no overrides, else a
    digest of them)."""
    key = hashlib.sha256("\0".join(overrides).encode()).hexdigest()[:10] if overrides else "default"
    return Path("outputs") / "reproduce" / f"{name}-{budget}" / key


def launcher(overrides: list[str]) -> tuple[list[str], str]:
    """(the overrides that run the grid at the machine's best throughput, how the report says it ran): on a CPU
    machine with several cores, as many jobs at once as cores with one thread each (Hydra's joblib launcher, n_jobs
    -1: trainer.threads=auto gives each job its share), unless the command line picks a launcher or a device."""
    chosen = [o.split("=", 1)[1] for o in overrides if o.startswith("hydra/launcher=")]
    if chosen:
        return [], f"hydra/launcher={chosen[-1]}, as the command line chose"
    cores = available_cores()
    serial = "Hydra's basic launcher: one run at a time in one process, trainer.threads=auto"
    if _installed("paddlepaddle-gpu") or any(o.startswith("trainer.device=") for o in overrides):
        return [], serial + " (a GPU build of Paddle or a device chosen: not run in parallel)"
    if cores < 2:
        return [], serial + " (one core)"
    if importlib.util.find_spec("hydra_plugins.hydra_joblib_launcher") is None:
        return [], serial + " (pip install 'regbench[launchers]' runs one job per core at once)"
    return (["hydra/launcher=joblib"],
            f"Hydra's joblib launcher: {cores} runs at once (one per core), one thread each (trainer.threads=auto)")


def _installed(distribution: str) -> bool:
    try:
        metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


def _escaped(override: str) -> str:
    # the sweeper's config would resolve an interpolation in a row (`dataset.data_file=${data_files.cifar10}`) once,
    # for every job; escaped, each job receives it as written and resolves it in its own config
    return override.replace("${", "\\${")
